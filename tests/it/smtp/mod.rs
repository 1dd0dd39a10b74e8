//! SMTP receive-engine tests: a real Ferry configured like the Edge of spec
//! §3 on its own loopback network, driven by real clients — our Rust client,
//! swaks and Python's smtplib — from distinct 127.x addresses.

mod crash;
mod limits;
mod logs;
mod peers;
mod policy;
mod proxy_protocol;
mod reload;
mod selection;
mod send_as;
mod smuggling;
mod tls;
