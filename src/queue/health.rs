//! Whether the queue can still be trusted with mail, and whether the
//! machine has room for more.
//!
//! A storage error that means the database is damaged (SQLite's
//! "malformed", "not a database") turns acceptance into `451 4.3.0` and
//! `/healthz` into failing, instead of acknowledging mail into a queue that
//! cannot be read back.
//!
//! Back pressure, as Exchange calls it: a monitor compares free disk space
//! under the data directory and the process's resident memory with the
//! transport settings' thresholds every second. Past one, new MAIL gets
//! `452 4.3.1 Insufficient system resources` (what Exchange answers), so
//! senders retry later; the state shows in `/healthz`, in the
//! `ferry_back_pressure` metric and on the dashboard before anything fails.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::ConfigService;
use crate::model::Limit;
use crate::observe::metrics::Metrics;

#[derive(Default)]
pub struct QueueHealth {
    /// The first storage failure seen, with the file it concerns.
    failure: Mutex<Option<String>>,
    /// Resources past their threshold now, with the figures.
    pressure: Mutex<BTreeMap<&'static str, String>>,
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

    /// Why new mail is refused for lack of resources now, if it is.
    pub fn back_pressure(&self) -> Option<String> {
        let p = self.pressure.lock().expect("not poisoned");
        (!p.is_empty()).then(|| p.values().cloned().collect::<Vec<_>>().join("; "))
    }

    fn set_pressure(&self, resource: &'static str, why: Option<String>, metrics: &Metrics) {
        let mut p = self.pressure.lock().expect("not poisoned");
        match why {
            Some(w) => {
                if !p.contains_key(resource) {
                    tracing::warn!(resource, reason = %w, "back pressure: new mail is refused with 452 4.3.1");
                }
                p.insert(resource, w);
            }
            None => {
                if p.remove(resource).is_some() {
                    tracing::info!(resource, "back pressure relieved: accepting mail again");
                }
            }
        }
        metrics.set_back_pressure(resource, p.contains_key(resource));
    }

    /// Checks the resources once against the thresholds in force.
    pub fn measure(&self, data_dir: &std::path::Path, config: &ConfigService, metrics: &Metrics) {
        let ts = &config.snapshot().transport.spec;
        let disk = match (ts.back_pressure_min_free_disk_percent, free_disk(data_dir)) {
            (0, _) | (_, None) => None,
            (min, Some((free, total))) => {
                let pct = free as f64 * 100.0 / total.max(1) as f64;
                (pct < min as f64).then(|| {
                    format!(
                        "disk: {pct:.1}% free under {} ({} MiB), below backPressureMinFreeDiskPercent {min}%",
                        data_dir.display(),
                        free >> 20
                    )
                })
            }
        };
        self.set_pressure("disk", disk, metrics);
        let memory = match (ts.back_pressure_max_memory, resident_memory()) {
            (Limit::Value(max), Some(rss)) if rss > max => Some(format!(
                "memory: {} MiB resident, above backPressureMaxMemory {} MiB",
                rss >> 20,
                max >> 20
            )),
            _ => None,
        };
        self.set_pressure("memory", memory, metrics);
    }

    /// Measures every second, and at once after a configuration change,
    /// until `shutdown`.
    pub fn spawn_monitor(
        self: &Arc<Self>,
        data_dir: PathBuf,
        config: Arc<ConfigService>,
        metrics: Arc<Metrics>,
        life: &crate::shutdown::Lifecycle,
    ) {
        let me = self.clone();
        let mut shutdown = life.token();
        life.spawn("back-pressure-monitor", async move {
            let mut changes = config.subscribe();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                me.measure(&data_dir, &config, &metrics);
                tokio::select! {
                    _ = tick.tick() => {}
                    r = changes.changed() => if r.is_err() { return },
                    _ = shutdown.recv() => return,
                }
            }
        });
    }

    /// Marks the queue failing when `e` says the database is damaged.
    pub fn check(&self, e: &anyhow::Error, file: &str) {
        if is_corruption(e) {
            self.fail(format!("{file}: {e:#}"));
        }
    }
}

/// (available, total) bytes of the file system holding `path`.
fn free_disk(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` a valid out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let unit = st.f_frsize as u64;
    Some((st.f_bavail as u64 * unit, st.f_blocks as u64 * unit))
}

/// This process's resident memory in bytes.
fn resident_memory() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system parameter.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * size.max(1) as u64)
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
