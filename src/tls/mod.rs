//! TLS material: certificates (`certs`: parsing and inspecting PEM chains,
//! checking that a private key belongs to its certificate, generating
//! self-signed ones, matching one to a connector FQDN), the server side's
//! per-connector configurations (`server`), and the roots outbound TLS
//! validates against (`roots`). The SMTP client's TLS policy is in
//! `smtp/client/tls.rs`.

pub mod certs;
pub mod roots;
pub mod server;
