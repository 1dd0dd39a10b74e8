//! SMTP: the receive engine (`server/`) and, later, the outbound client.
//! Every reply Ferry sends lives in one catalogue, `replies`, which the
//! session and the tests share.

pub mod address;
pub mod client;
pub mod replies;
pub mod server;
pub mod stream;
