//! Observability: message tracking (`tracking`), protocol logs
//! (`protolog`) and Prometheus metrics (`metrics`). One `Observer` per
//! running server is shared by the SMTP server, the delivery engine, the
//! configuration service and the API. Recording never waits on a disk:
//! events and log lines go to writer tasks; counters are atomics.

pub mod metrics;
pub mod periods;
pub mod protolog;
pub mod tracking;
pub mod vocabulary;
pub mod webhooks;

use std::path::Path;
use std::sync::Arc;

use crate::config::ConfigService;
use crate::shutdown::Lifecycle;

pub struct Observer {
    pub metrics: Arc<metrics::Metrics>,
    pub tracking: tracking::Tracker,
    pub protolog: protolog::ProtocolLog,
    /// The TLS reports' periods: the delivery engine counts sessions into
    /// them, the reporter ends them.
    pub tls_periods: periods::Periods,
}

impl Observer {
    pub async fn start(
        data_dir: &Path,
        config: &ConfigService,
        metrics: Arc<metrics::Metrics>,
        life: &Lifecycle,
    ) -> anyhow::Result<Arc<Observer>> {
        let tracking =
            tracking::Tracker::open(&data_dir.join("tracking.db"), config.subscribe(), life)
                .await?;
        life.spawn(
            "webhooks",
            webhooks::run(
                tracking.pool().clone(),
                config.subscribe(),
                config.secrets.clone(),
                life.token(),
            ),
        );
        Ok(Arc::new(Observer {
            metrics,
            tracking,
            protolog: protolog::ProtocolLog::start(data_dir, config.subscribe(), life)?,
            tls_periods: periods::Periods::default(),
        }))
    }

    /// Writes out what is buffered and ends the writers (the lifecycle
    /// joins their threads).
    pub async fn stop(&self) {
        self.tracking.close().await;
        self.protolog.stop().await;
    }
}
