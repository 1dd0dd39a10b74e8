//! Certificates: parsing and inspecting PEM chains, checking that a private
//! key belongs to its certificate, generating self-signed certificates, and
//! matching a certificate to a connector FQDN. (The TLS acceptors and
//! connectors that use them come with the SMTP engine.)

pub mod certs;
pub mod server;
