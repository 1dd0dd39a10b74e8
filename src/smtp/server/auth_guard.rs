//! What stands between AUTH and the password hashes: a bound on concurrent
//! argon2 verifications, a dummy hash for unknown users, and a per-source
//! lockout counted across sessions.
//!
//! Each argon2 verification takes the hash's memory cost (19 MiB with the
//! default parameters) for tens of milliseconds. Left unbounded, a flood of
//! `AUTH PLAIN` from a few addresses ran hundreds at once on tokio's
//! blocking pool and took the process past 3.8 GB. Here at most one
//! verification per core runs at a time; the rest wait their turn (they are
//! not refused, so a burst of honest Hubs only slows down), and the memory
//! is handed back to the system after each one (see `main.rs`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

pub struct AuthGuard {
    /// One permit per core: the most argon2 verifications running at once,
    /// so their memory is bounded by the machine, not by the attacker.
    slots: Arc<Semaphore>,
    /// Recent failures per client address, across sessions and connectors
    /// (Exchange's MaxLogonFailures counts per session only).
    failures: Failures,
}

/// Recent failed logins per client address, oldest first: SMTP AUTH's
/// lockout, and the API's for wrong tokens.
#[derive(Default)]
pub struct Failures {
    by_ip: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

/// A hash of a random password, verified when the user name is unknown so
/// that a failed login takes the same time whether the user exists or not.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| crate::secrets::hash_password(&crate::secrets::generate_token()))
}

impl Default for AuthGuard {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        AuthGuard {
            slots: Arc::new(Semaphore::new(cores)),
            failures: Failures::default(),
        }
    }
}

impl AuthGuard {
    /// Verifies `password` against `hash` (or against the dummy hash when
    /// there is no such login), waiting for a free slot first.
    pub async fn verify(&self, hash: Option<String>, password: String) -> bool {
        let Ok(_permit) = self.slots.clone().acquire_owned().await else {
            return false;
        };
        let known = hash.is_some();
        let phc = hash.unwrap_or_else(|| dummy_hash().to_string());
        let ok =
            tokio::task::spawn_blocking(move || crate::secrets::verify_password(&phc, &password))
                .await
                .unwrap_or(false);
        ok && known
    }

    /// Whether `ip` has failed `threshold` times within `window` (0 = never).
    pub fn locked_out(&self, ip: IpAddr, threshold: u32, window: Duration) -> bool {
        self.failures.locked_out(ip, threshold, window).is_some()
    }

    /// Counts a failed login from `ip`.
    pub fn failed(&self, ip: IpAddr, window: Duration) {
        self.failures.failed(ip, window)
    }
}

impl Failures {
    /// When `ip` has failed `threshold` times within `window` (0 = never):
    /// how long until the oldest of them ages out.
    pub fn locked_out(&self, ip: IpAddr, threshold: u32, window: Duration) -> Option<Duration> {
        if threshold == 0 {
            return None;
        }
        let mut f = self.by_ip.lock().expect("not poisoned");
        let times = f.get_mut(&ip)?;
        prune(times, window);
        if times.is_empty() {
            f.remove(&ip);
            return None;
        }
        (times.len() >= threshold as usize).then(|| {
            let oldest = times[times.len() - threshold as usize];
            window.saturating_sub(oldest.elapsed())
        })
    }

    /// Counts a failed login from `ip`.
    pub fn failed(&self, ip: IpAddr, window: Duration) {
        let mut f = self.by_ip.lock().expect("not poisoned");
        // Keep the table small under a spray from many addresses.
        if f.len() > 100_000 {
            f.retain(|_, t| {
                prune(t, window);
                !t.is_empty()
            });
        }
        let times = f.entry(ip).or_default();
        prune(times, window);
        times.push_back(Instant::now());
        // Only the count within the window matters; never grow without end.
        while times.len() > 10_000 {
            times.pop_front();
        }
    }
}

fn prune(times: &mut VecDeque<Instant>, window: Duration) {
    let now = Instant::now();
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) > window)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_users_never_verify_and_the_dummy_is_reused() {
        let g = AuthGuard::default();
        assert!(!g.verify(None, "anything".into()).await);
        let h = crate::secrets::hash_password("right");
        assert!(g.verify(Some(h.clone()), "right".into()).await);
        assert!(!g.verify(Some(h), "wrong".into()).await);
    }

    #[test]
    fn lockout_counts_failures_within_the_window() {
        let g = AuthGuard::default();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let w = Duration::from_secs(60);
        for _ in 0..3 {
            assert!(!g.locked_out(ip, 3, w));
            g.failed(ip, w);
        }
        assert!(g.locked_out(ip, 3, w));
        assert!(!g.locked_out(ip, 0, w), "0 disables the lockout");
        assert!(!g.locked_out("127.0.0.10".parse().unwrap(), 3, w));
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            !g.locked_out(ip, 3, Duration::from_millis(1)),
            "failures age out"
        );
    }
}
