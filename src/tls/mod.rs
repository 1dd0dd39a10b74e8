//! TLS material: certificates (`certs`: parsing and inspecting PEM chains,
//! checking that a private key belongs to its certificate, generating
//! self-signed ones, matching one to a connector FQDN), the server side's
//! per-connector configurations (`server`), and the roots outbound TLS
//! validates against (`roots`, cached per trust-anchor set). The SMTP
//! client chooses its TLS policy from a send connector in
//! `smtp/client/policy.rs` and runs it in `smtp/client/tls.rs`. `any` is
//! the verifier that accepts any certificate, on either side. `acme` orders
//! and renews certificates from an ACME CA into the store.

pub mod acme;
pub mod any;
pub mod certs;
pub mod roots;
pub mod server;
