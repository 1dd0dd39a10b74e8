//! SMTP: the receive engine (`server/`), the outbound client (`client/`),
//! envelope addresses written back out (`address`), and the stream type
//! both use (`stream`).
//! Every reply Ferry sends lives in one catalogue, `replies`, which the
//! session and the tests share.

pub mod client;
pub mod replies;
pub mod server;
pub mod stream;
