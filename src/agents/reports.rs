//! What the aggregate reports Ferry sends have in common (DMARC, RFC 7489;
//! TLS, RFC 8460): counts per period in `tracking.db`, a task that reports
//! each ended period once a minute looks, "send now" that ends the current
//! period first, one pass at a time, and rows never reported dropped after
//! a week.

use std::future::Future;
use std::time::Duration;

use sqlx::SqlitePool;

use crate::config::{ConfigService, Snapshot};
use crate::observe::periods::{DAY, Periods};
use crate::observe::tracking::Tracker;
use crate::queue::Queue;

/// Rows of periods older than this are dropped unreported.
const KEEP: i64 = 7 * DAY;
/// How often the reporter looks for ended periods.
const TICK: Duration = Duration::from_secs(60);

/// One kind of aggregate report.
pub trait Reporter: Sync {
    /// A period's rows for one report.
    type Group: Send + Sync;
    /// The report made of a group, as the API lists it.
    type Made: Send;
    /// For the log: `DMARC reports`.
    const NAME: &'static str;

    fn periods(&self) -> &Periods;
    fn tracking(&self) -> &Tracker;
    /// One pass at a time.
    fn pass(&self) -> &tokio::sync::Mutex<()>;
    fn enabled(snap: &Snapshot) -> bool;
    fn closed(
        pool: &SqlitePool,
        before: i64,
    ) -> impl Future<Output = anyhow::Result<Vec<Self::Group>>> + Send;
    /// Makes one group's report and queues it where it goes.
    fn make(
        &self,
        snap: &Snapshot,
        config: &ConfigService,
        queue: &Queue,
        agents: &super::Agents,
        group: &Self::Group,
        before: i64,
    ) -> impl Future<Output = anyhow::Result<Self::Made>> + Send;
    /// Records the report and forgets the group's rows.
    fn done(
        pool: &SqlitePool,
        group: &Self::Group,
        made: &Self::Made,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn forget(pool: &SqlitePool, before: i64) -> impl Future<Output = anyhow::Result<u64>> + Send;
}

/// Ends the current period now and reports every ended one: the API's
/// "send now". The reports made, newest first.
pub async fn send_now<R: Reporter>(
    r: &R,
    config: &ConfigService,
    queue: &Queue,
    agents: &super::Agents,
) -> anyhow::Result<Vec<R::Made>> {
    let cut = r.periods().cut();
    report(r, config, queue, agents, cut).await
}

/// Every minute: the periods that ended are reported (when the reports
/// are on), and rows too old to matter are dropped.
pub async fn run<R: Reporter>(
    r: &R,
    config: &ConfigService,
    queue: &Queue,
    agents: &super::Agents,
    mut shutdown: crate::shutdown::Shutdown,
) {
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        let now = r.periods().current();
        if let Err(e) = R::forget(r.tracking().pool(), now - KEEP).await {
            tracing::warn!(error = %format!("{e:#}"), reports = R::NAME, "old rows could not be dropped");
        }
        if let Err(e) = report(r, config, queue, agents, now).await {
            tracing::warn!(error = %format!("{e:#}"), reports = R::NAME, "not sent this time");
        }
    }
}

/// Reports every period that started before `before`.
async fn report<R: Reporter>(
    r: &R,
    config: &ConfigService,
    queue: &Queue,
    agents: &super::Agents,
    before: i64,
) -> anyhow::Result<Vec<R::Made>> {
    let _one = r.pass().lock().await;
    let snap = config.snapshot();
    if !R::enabled(&snap) {
        return Ok(vec![]);
    }
    // Everything counted so far is on disk.
    r.tracking().flush().await;
    let pool = r.tracking().pool();
    let mut made = vec![];
    for group in R::closed(pool, before).await? {
        let report = r.make(&snap, config, queue, agents, &group, before).await?;
        R::done(pool, &group, &report).await?;
        made.push(report);
    }
    made.reverse();
    Ok(made)
}
