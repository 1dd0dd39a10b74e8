//! The one shutdown of a running Ferry, in the manner of mini-redis's
//! `shutdown.rs`: a `Lifecycle` owns a signal and everything started under
//! it; every loop that must stop holds a `Shutdown` token and leaves when
//! it fires. Listeners, sessions, the API servers, the delivery scheduler
//! and the monitors are tasks under it; the writer threads (queue,
//! tracking, protocol logs) are threads under it, told to stop by their
//! owners once nothing produces for them any more, and joined.
//!
//! Stopping is in this order (`App::stop_within`): signal; let sessions
//! finish (up to a deadline); join the tasks; close the writers' channels;
//! join the threads. Nothing started under the lifecycle outlives it.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

/// A token for one loop that must stop when Ferry stops.
#[derive(Clone, Debug)]
pub struct Shutdown {
    signal: watch::Receiver<bool>,
}

impl Shutdown {
    /// Whether the signal has fired.
    pub fn is_shutdown(&self) -> bool {
        *self.signal.borrow()
    }

    /// Waits for the signal (at once if it has fired).
    pub async fn recv(&mut self) {
        // An error means the lifecycle is gone: that is a shutdown too.
        let _ = self.signal.wait_for(|s| *s).await;
    }
}

/// What was started under a lifecycle, by name.
enum Started {
    Task(&'static str, tokio::task::JoinHandle<()>),
    Thread(&'static str, std::thread::JoinHandle<()>),
}

/// The owner of the signal and of everything started under it.
pub struct Lifecycle {
    signal: watch::Sender<bool>,
    started: Mutex<Vec<Started>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            signal: watch::channel(false).0,
            started: Mutex::new(vec![]),
        }
    }
}

impl Lifecycle {
    /// A token for a loop that must stop with this lifecycle.
    pub fn token(&self) -> Shutdown {
        Shutdown {
            signal: self.signal.subscribe(),
        }
    }

    /// Starts a task that is joined when the lifecycle stops.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        let mut started = self.started.lock().expect("not poisoned");
        // Tasks that ended on their own are forgotten, so the list stays
        // as long as what runs.
        started.retain(|s| !matches!(s, Started::Task(_, h) if h.is_finished()));
        started.push(Started::Task(name, handle));
    }

    /// Starts a thread that is joined when the lifecycle stops. It must end
    /// on its own once its owner closes its channel.
    pub fn spawn_thread(
        &self,
        name: &'static str,
        body: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        let handle = std::thread::Builder::new()
            .name(format!("ferry-{name}"))
            .spawn(body)?;
        self.started
            .lock()
            .expect("not poisoned")
            .push(Started::Thread(name, handle));
        Ok(())
    }

    /// Fires the signal: every token holder starts to stop.
    pub fn signal(&self) {
        self.signal.send_replace(true);
    }

    pub fn is_signalled(&self) -> bool {
        *self.signal.borrow()
    }

    /// Waits for every task started so far (after `signal`), all within
    /// `deadline`; a task that has not ended by then is aborted and named
    /// in the log.
    pub async fn join_tasks(&self, deadline: Duration) {
        let tasks: Vec<_> = {
            let mut started = self.started.lock().expect("not poisoned");
            let (tasks, threads): (Vec<_>, Vec<_>) = started
                .drain(..)
                .partition(|s| matches!(s, Started::Task(..)));
            *started = threads;
            tasks
        };
        let until = tokio::time::Instant::now() + deadline;
        for t in tasks {
            if let Started::Task(name, mut handle) = t {
                match tokio::time::timeout_at(until, &mut handle).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) if e.is_panic() => tracing::error!(task = name, "task panicked"),
                    Ok(Err(_)) => {}
                    Err(_) => {
                        tracing::warn!(task = name, "task did not stop in time; aborted");
                        handle.abort();
                    }
                }
            }
        }
    }

    /// Waits for every thread started so far; call after their owners
    /// closed their channels.
    pub async fn join_threads(&self) {
        let threads: Vec<_> = self
            .started
            .lock()
            .expect("not poisoned")
            .drain(..)
            .collect();
        for t in threads {
            match t {
                Started::Thread(name, handle) => {
                    let joined = tokio::task::spawn_blocking(move || handle.join()).await;
                    if !matches!(joined, Ok(Ok(()))) {
                        tracing::error!(thread = name, "writer thread panicked");
                    }
                }
                Started::Task(_, handle) => handle.abort(),
            }
        }
    }

    /// How many tasks and threads are still held (for tests).
    pub fn running(&self) -> usize {
        self.started.lock().expect("not poisoned").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn tasks_and_threads_stop_in_order_and_are_joined() {
        let life = Lifecycle::default();
        let mut token = life.token();
        let task_done = Arc::new(AtomicBool::new(false));
        let d = task_done.clone();
        life.spawn("loop", async move {
            token.recv().await;
            d.store(true, Ordering::SeqCst);
        });
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread_done = Arc::new(AtomicBool::new(false));
        let d = thread_done.clone();
        life.spawn_thread("writer", move || {
            while rx.recv().is_ok() {}
            d.store(true, Ordering::SeqCst);
        })
        .unwrap();
        assert_eq!(life.running(), 2);
        assert!(!life.token().is_shutdown());
        life.signal();
        life.join_tasks(Duration::from_secs(5)).await;
        assert!(task_done.load(Ordering::SeqCst));
        // The thread is still running: its channel is open.
        assert!(!thread_done.load(Ordering::SeqCst));
        assert_eq!(life.running(), 1);
        drop(tx);
        life.join_threads().await;
        assert!(thread_done.load(Ordering::SeqCst));
        assert_eq!(life.running(), 0);
        assert!(life.token().is_shutdown());
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_signal_is_aborted_at_the_deadline() {
        let life = Lifecycle::default();
        life.spawn("stubborn", std::future::pending());
        life.signal();
        let t = std::time::Instant::now();
        life.join_tasks(Duration::from_millis(100)).await;
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(life.running(), 0);
    }
}
