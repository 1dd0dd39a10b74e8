//! Loopback networks for tests: each test app plays its hosts on its own
//! 127.N.0.0/24, so tests running in parallel never fight over an address.
//! The networks that fixed tests use (their own processes on known ports)
//! are never handed out. A wildcard binding (`0.0.0.0`) takes its port on
//! every network: `smtp::selection` binds 2600 and 2620–2669 that way, so no
//! other test or README block listens on those ports on any address.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Networks a test uses by number: 0 and 1 (the host's own 127.0.0.1 and
/// the Quick start), 61 (edge_hub), 77 (delivery's private Postfix),
/// 201–212 (hostile's processes), 213 (readme), 247 (smtp::logs), 248
/// (tests/contract/run.sh, so it can run beside the suite), 249 (fuzz)
/// and 250 (smtp::crash).
pub const RESERVED: &[u8] = &[
    0, 1, 61, 77, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 247, 248, 249,
    250,
];

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The next free network, from 100 upwards, then the rest of 2–254.
pub fn next() -> u8 {
    let order = (100u8..=254).chain(2u8..100);
    let free: Vec<u8> = order.filter(|n| !RESERVED.contains(n)).collect();
    let i = NEXT.fetch_add(1, Ordering::SeqCst);
    *free
        .get(i)
        .unwrap_or_else(|| panic!("more than {} test networks in one run", free.len()))
}
