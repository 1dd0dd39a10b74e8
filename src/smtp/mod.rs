//! SMTP: the receive engine (`server/`, a file per verb under
//! `server/session/`), the outbound client (`client/`: its replies in
//! `reply.rs`, its TLS in `tls.rs`, its policy toward a next hop in
//! `policy.rs`), and the stream type both use (`stream`). Envelope
//! addresses are `model::Address`.
//! Every reply Ferry sends lives in one catalogue, `replies`, which the
//! session and the tests share.

pub mod client;
pub mod replies;
pub mod server;
pub mod stream;
