//! Whether the queue can still be trusted with mail. A storage error that
//! means the database is damaged (SQLite's "malformed", "not a database")
//! turns acceptance into `451 4.3.0` and `/healthz` into failing, instead
//! of acknowledging mail into a queue that cannot be read back.

use std::sync::Mutex;

#[derive(Default)]
pub struct QueueHealth {
    /// The first storage failure seen, with the file it concerns.
    failure: Mutex<Option<String>>,
}

impl QueueHealth {
    /// Records a failure; the first one is kept, it is the cause.
    pub fn fail(&self, reason: String) {
        let mut f = self.failure.lock().expect("not poisoned");
        if f.is_none() {
            tracing::error!(reason = %reason, "the queue's storage is failing: new mail is refused with 451 until Ferry is restarted on a repaired queue");
            *f = Some(reason);
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.failure.lock().expect("not poisoned").clone()
    }

    /// Marks the queue failing when `e` says the database is damaged.
    pub fn check(&self, e: &anyhow::Error, file: &str) {
        if is_corruption(e) {
            self.fail(format!("{file}: {e:#}"));
        }
    }
}

/// SQLite's words for a damaged database (SQLITE_CORRUPT, SQLITE_NOTADB).
pub fn is_corruption(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}").to_ascii_lowercase();
    text.contains("malformed") || text.contains("not a database") || text.contains("corrupt")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_damage_marks_the_queue_failing() {
        let h = QueueHealth::default();
        h.check(&anyhow::anyhow!("database is locked"), "queue.db");
        assert!(h.failure().is_none());
        h.check(
            &anyhow::anyhow!("database disk image is malformed"),
            "queue.db",
        );
        h.check(&anyhow::anyhow!("file is not a database"), "queue.db");
        assert_eq!(
            h.failure().unwrap(),
            "queue.db: database disk image is malformed"
        );
    }
}
