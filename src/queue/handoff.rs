//! Committed messages handed to the delivery engine in memory.
//!
//! When the queue's writer has committed a message, it keeps the message's
//! row and body here, so the delivery engine sends it without reading them
//! back from SQLite. The database stays the source of truth: an entry is
//! only a copy of what was committed, it is never written to, a message
//! not found here (evicted, too large, or after a restart) is read from the
//! database, and nothing here outlives the process.
//!
//! The bodies held are bounded in bytes. An entry goes when the writer
//! deletes its message after a delivery, or when it is evicted: when the
//! bound is reached, entries held longer than `STALE` go, oldest first
//! (their messages wait for a retry, a hop that is down); if none is that
//! old, the new message is not held and delivery reads it from the
//! database. A backlog is sent oldest first, so evicting the oldest young
//! entries would drop exactly the messages about to be sent.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::queue::{StoredMessage, StoredRecipient};

/// A body larger than this is not kept (it is read or streamed from the
/// database, as before).
pub const MAX_BODY: usize = 256 * 1024;

/// The most body bytes kept at once.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;

/// An entry held this long may be evicted for a new one.
pub const STALE: Duration = Duration::from_secs(10);

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
    /// The recipients each held message was committed with, routed at
    /// acceptance, for as long as nothing has changed them since: the
    /// writer forgets a message's list before it commits anything that
    /// touches its recipients (`forget_recipients`).
    recipients: HashMap<i64, Arc<[StoredRecipient]>>,
    /// Ids in the order they came, with when; some may be gone from
    /// `entries` already.
    order: VecDeque<(i64, Instant)>,
    bytes: usize,
}

/// The handed-off messages; cheap to clone.
#[derive(Clone, Default)]
pub struct Handoff {
    inner: Arc<Mutex<Inner>>,
}

impl Handoff {
    /// Keeps a committed message, with the recipients it was committed
    /// with, if there is room under the byte bound, making room from
    /// entries older than `STALE`.
    pub fn put(&self, committed: Committed, recipients: Vec<StoredRecipient>) {
        self.put_at(committed, recipients, Instant::now());
    }

    fn put_at(&self, committed: Committed, recipients: Vec<StoredRecipient>, now: Instant) {
        let len = committed.body.len();
        if len > MAX_BODY {
            return;
        }
        let id = committed.message.id;
        let mut inner = self.inner.lock().expect("not poisoned");
        while inner.bytes + len > MAX_BYTES {
            match inner.order.front() {
                Some((old, _)) if !inner.entries.contains_key(old) => {}
                Some((_, at)) if now.duration_since(*at) >= STALE => {}
                // Everything held is young: it is about to be sent.
                _ => return,
            }
            let Some((old, _)) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.entries.remove(&old) {
                inner.bytes -= gone.body.len();
                inner.recipients.remove(&old);
            }
        }
        inner.recipients.insert(id, recipients.into());
        if let Some(previous) = inner.entries.insert(id, Arc::new(committed)) {
            inner.bytes -= previous.body.len();
        }
        inner.order.push_back((id, now));
        inner.bytes += len;
        // Ids whose entries were removed (delivered) leave the order when
        // they reach its front; keep it from growing without bound.
        if inner.order.len() > 4 * inner.entries.len() + 1024 {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|(id, _)| entries.contains_key(id));
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

    /// The recipients the message was committed with (`next_hop` set for
    /// those routed at acceptance), if it is held and nothing has changed
    /// them since. Only the fields fixed at acceptance are meaningful, as
    /// for the message (`Committed`): address, index, ORCPT, NOTIFY and the
    /// queue; status, attempts and errors are what a new row holds.
    pub fn recipients(&self, id: i64) -> Option<Arc<[StoredRecipient]>> {
        self.inner
            .lock()
            .expect("not poisoned")
            .recipients
            .get(&id)
            .cloned()
    }

    /// Forgets the recipients of these messages (None: of every message),
    /// so delivery reads them from the database: the writer calls this
    /// before it commits a change to them.
    pub fn forget_recipients(&self, ids: Option<&[i64]>) {
        let mut inner = self.inner.lock().expect("not poisoned");
        match ids {
            None => inner.recipients.clear(),
            Some(ids) => {
                for id in ids {
                    inner.recipients.remove(id);
                }
            }
        }
    }

    /// Forgets messages that were deleted.
    pub fn remove(&self, ids: &[i64]) {
        if ids.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().expect("not poisoned");
        for id in ids {
            inner.recipients.remove(id);
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
    fn past_the_byte_bound_only_stale_entries_make_room() {
        let h = Handoff::default();
        let n = MAX_BYTES / MAX_BODY;
        let t0 = Instant::now();
        for id in 0..n as i64 {
            h.put_at(committed(id, MAX_BODY), vec![], t0);
        }
        assert_eq!(h.held(), (n, MAX_BYTES));
        // Full of young entries (a backlog about to be sent oldest first):
        // the newcomer is not held, and nothing held is dropped.
        let young = t0 + STALE / 2;
        h.put_at(committed(n as i64, MAX_BODY), vec![], young);
        assert!(h.get(n as i64).is_none());
        assert!(h.get(0).is_some() && h.get(n as i64 - 1).is_some());
        // A delivered entry frees its room at once.
        h.remove(&[5]);
        h.put_at(committed(n as i64 + 1, MAX_BODY), vec![], young);
        assert!(h.get(n as i64 + 1).is_some());
        assert_eq!(h.held(), (n, MAX_BYTES));
        // Once the oldest have waited past STALE (a hop that is down), they
        // go first to make room.
        let late = t0 + STALE;
        h.put_at(committed(n as i64 + 2, MAX_BODY), vec![], late);
        h.put_at(committed(n as i64 + 3, MAX_BODY), vec![], late);
        assert!(h.get(0).is_none() && h.get(1).is_none());
        assert_eq!(h.get(2).expect("held").body.len(), MAX_BODY);
        assert!(h.get(n as i64 + 2).is_some() && h.get(n as i64 + 3).is_some());
        assert_eq!(h.held(), (n, MAX_BYTES));
    }

    fn recipient(message: i64, idx: i64) -> StoredRecipient {
        StoredRecipient {
            message,
            idx,
            address: Address::parse(format!("r{idx}@fabrikam.test")).expect("an address"),
            status: "Ready".into(),
            next_hop: Some("hop".into()),
            attempts: 0,
            next_attempt_ms: 0,
            last_error: None,
            remote_host: None,
            orcpt: None,
            notify: 0,
        }
    }

    #[test]
    fn committed_recipients_are_kept_until_forgotten_and_go_with_their_message() {
        let h = Handoff::default();
        for id in 1..=3 {
            h.put(committed(id, 10), vec![recipient(id, 0), recipient(id, 1)]);
        }
        assert_eq!(h.recipients(1).expect("held").len(), 2);
        // A change to message 1's recipients: read from the database from
        // then on; the message itself is still held.
        h.forget_recipients(Some(&[1]));
        assert!(h.recipients(1).is_none() && h.get(1).is_some());
        assert!(h.recipients(2).is_some());
        // Deleted: the recipients go with it.
        h.remove(&[2]);
        assert!(h.recipients(2).is_none());
        // A change to a whole queue forgets every list.
        h.forget_recipients(None);
        assert!(h.recipients(3).is_none() && h.get(3).is_some());
        // A message not held keeps no recipients either.
        h.put(committed(4, MAX_BODY + 1), vec![recipient(4, 0)]);
        assert!(h.recipients(4).is_none());
    }

    #[test]
    fn a_large_body_is_not_kept_and_a_removed_one_frees_its_bytes() {
        let h = Handoff::default();
        h.put(committed(1, MAX_BODY + 1), vec![]);
        assert!(h.get(1).is_none());
        h.put(committed(2, 1000), vec![]);
        h.put(committed(3, 500), vec![]);
        h.remove(&[2, 9]);
        assert_eq!(h.held(), (1, 500));
        // The order of removed ids is trimmed as entries come and go.
        for id in 10..20_000 {
            h.put(committed(id, 10), vec![]);
            h.remove(&[id]);
        }
        assert_eq!(h.held(), (1, 500));
        assert!(h.inner.lock().unwrap().order.len() <= 4 + 1024 + 1);
    }
}
