//! SMTP receive-engine tests: a real Ferry configured like the Edge of spec
//! §3 on its own loopback network, driven by real clients — our Rust client,
//! swaks and Python's smtplib — from distinct 127.x addresses.

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

mod client;
mod pki;
mod scenario;

mod crash;
mod limits;
mod logs;
mod peers;
mod policy;
mod reload;
mod selection;
mod smuggling;
mod tls;
