//! Ferry's integration tests: one crate, so the support code is shared by
//! module rather than included by path, and one link step builds them all.
//! Every test talks to real peers (Ferry itself built as the library or
//! run as the binary, Postfix, dnsmasq, swaks, Python's smtplib, OpenSSL)
//! on its own 127.x addresses.
//!
//! Suites, each runnable alone with `cargo test --test it <suite>::`:
//! `anti_spam` (the transport agents), `message_auth` (DKIM, SPF, DMARC), `api` (the REST API), `smtp` (the receive engine), `delivery` (routing,
//! delivery, retries, DSNs, the queue viewer), `hostile` (the attacks of
//! *Safe by default*), `edge_hub` (the seed scenario, four processes),
//! `fuzz` (the SMTP session under random input) and `readme` (the README's
//! shell blocks). A test whose peer is not installed says so and is skipped
//! (`support::peers`), unless `FERRY_REQUIRE_PEERS=1` (as in `.ci/run`)
//! makes a missing peer a failure.

mod support;

mod anti_spam;
mod api;
mod delivery;
mod edge_hub;
mod fuzz;
mod hostile;
mod message_auth;
mod readme;
mod smtp;
