//! Message authentication against independent implementations: Ferry's
//! DKIM signatures verified by dkimpy (PyPI) with the keys served by
//! dnsmasq on loopback, keys generated and imported (OpenSSL) through the
//! API, their DNS records checked.

mod arc;
mod dkim;
mod spf;
mod verify;
