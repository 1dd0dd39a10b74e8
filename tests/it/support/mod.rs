//! Support shared by every suite: a Ferry in-process (`app`), our SMTP test
//! client (`client`), a test PKI (`pki`), the Edge of spec §3 on its own
//! network (`scenario`), a recording SMTP/LMTP peer (`sink`), loopback
//! networks for tests (`net`), the peers a test needs (`peers`) and a spawned
//! process killed on drop (`process`).

pub mod app;
pub mod client;
pub mod dns;
pub mod haproxy;
pub mod net;
pub mod pebble;
pub mod peers;
pub mod pki;
pub mod postgres;
pub mod process;
pub mod python;
pub mod rspamd;
pub mod scenario;
pub mod sink;
pub mod slapd;
