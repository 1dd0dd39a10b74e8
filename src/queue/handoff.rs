//! Committed messages handed to the delivery engine in memory.
//!
//! When the queue's writer has committed a message, it keeps the message's
//! row and body here, so the delivery engine sends it without reading them
//! back from SQLite. The database stays the source of truth: an entry is
//! only a copy of what was committed, it is never written to, a message
//! not found here (evicted, too large, or after a restart) is read from the
//! database, and nothing here outlives the process.
//!
//! The bodies held are bounded in bytes; the oldest go first. An entry
//! goes when the writer deletes its message after a delivery, or when it
//! is evicted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::store::queue::StoredMessage;

/// A body larger than this is not kept (it is read or streamed from the
/// database, as before).
pub const MAX_BODY: usize = 256 * 1024;

/// The most body bytes kept at once.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;

/// A committed message as delivery needs it. Only the fields that never
/// change after acceptance are meaningful: `suspended` and
/// `delay_notified` are false here whatever the database says, and nothing
/// may read them from a handed-off copy.
pub struct Committed {
    pub message: StoredMessage,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<i64, Arc<Committed>>,
    /// Ids in the order they came; some may be gone from `entries` already.
    order: VecDeque<i64>,
    bytes: usize,
}

/// The handed-off messages; cheap to clone.
#[derive(Clone, Default)]
pub struct Handoff {
    inner: Arc<Mutex<Inner>>,
}

impl Handoff {
    /// Keeps a committed message, evicting the oldest past the byte bound.
    pub fn put(&self, committed: Committed) {
        let len = committed.body.len();
        if len > MAX_BODY {
            return;
        }
        let id = committed.message.id;
        let mut inner = self.inner.lock().expect("not poisoned");
        while inner.bytes + len > MAX_BYTES {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.entries.remove(&old) {
                inner.bytes -= gone.body.len();
            }
        }
        if let Some(previous) = inner.entries.insert(id, Arc::new(committed)) {
            inner.bytes -= previous.body.len();
        }
        inner.order.push_back(id);
        inner.bytes += len;
        // Ids whose entries were removed (delivered) leave the order when
        // they reach its front; keep it from growing without bound.
        if inner.order.len() > 4 * inner.entries.len() + 1024 {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|id| entries.contains_key(id));
        }
    }

    /// The message, if it is still held.
    pub fn get(&self, id: i64) -> Option<Arc<Committed>> {
        self.inner
            .lock()
            .expect("not poisoned")
            .entries
            .get(&id)
            .cloned()
    }

    /// Forgets messages that were deleted.
    pub fn remove(&self, ids: &[i64]) {
        if ids.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().expect("not poisoned");
        for id in ids {
            if let Some(gone) = inner.entries.remove(id) {
                inner.bytes -= gone.body.len();
            }
        }
    }

    /// (messages, body bytes) held.
    pub fn held(&self) -> (usize, usize) {
        let inner = self.inner.lock().expect("not poisoned");
        (inner.entries.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Address;

    fn committed(id: i64, len: usize) -> Committed {
        Committed {
            message: StoredMessage {
                id,
                message_id: format!("<{id}@test>"),
                sender: Address::null(),
                received_ms: 0,
                size: len as i64,
                receive_connector: String::new(),
                client_ip: String::new(),
                suspended: false,
                delay_notified: false,
                subject: None,
                env_id: None,
                ret: None,
                require_tls: false,
            },
            body: vec![b'x'; len],
        }
    }

    #[test]
    fn the_oldest_go_first_past_the_byte_bound() {
        let h = Handoff::default();
        let n = MAX_BYTES / MAX_BODY;
        for id in 0..n as i64 + 2 {
            h.put(committed(id, MAX_BODY));
        }
        assert_eq!(h.held(), (n, MAX_BYTES));
        assert!(h.get(0).is_none() && h.get(1).is_none());
        assert_eq!(h.get(2).expect("held").body.len(), MAX_BODY);
        assert!(h.get(n as i64 + 1).is_some());
    }

    #[test]
    fn a_large_body_is_not_kept_and_a_removed_one_frees_its_bytes() {
        let h = Handoff::default();
        h.put(committed(1, MAX_BODY + 1));
        assert!(h.get(1).is_none());
        h.put(committed(2, 1000));
        h.put(committed(3, 500));
        h.remove(&[2, 9]);
        assert_eq!(h.held(), (1, 500));
        // The order of removed ids is trimmed as entries come and go.
        for id in 10..20_000 {
            h.put(committed(id, 10));
            h.remove(&[id]);
        }
        assert_eq!(h.held(), (1, 500));
        assert!(h.inner.lock().unwrap().order.len() <= 4 + 1024 + 1);
    }
}
