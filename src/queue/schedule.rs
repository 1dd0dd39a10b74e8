//! The retry schedule (spec rules 20–21), as pure functions of the
//! transport settings: when a queue whose next hop could not be reached is
//! tried again, and when a recipient deferred by a per-message 4xx is.
//! Times are Unix milliseconds, so a one-second interval really waits a
//! second.

use crate::model::{Timespan, TransportSettings};

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Now, in Unix seconds (message ages).
pub fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// How long a queue waits after its `failures`-th connection failure in a
/// row (1 for the first): `queueGlitchRetryCount` glitch retries
/// `queueGlitchRetryInterval` apart, then `transientFailureRetryCount`
/// retries at `transientFailureRetryInterval`, then every
/// `outboundConnectionFailureRetryInterval`.
pub fn connection_retry_interval(ts: &TransportSettings, failures: i64) -> Timespan {
    let glitch = ts.queue_glitch_retry_count as i64;
    let transient = ts.transient_failure_retry_count as i64;
    if failures <= glitch {
        ts.queue_glitch_retry_interval
    } else if failures <= glitch + transient {
        ts.transient_failure_retry_interval
    } else {
        ts.outbound_connection_failure_retry_interval
    }
}

/// When a queue is tried again after its `failures`-th failure, from `now`
/// (ms); never sooner than a second.
pub fn connection_retry_at(ts: &TransportSettings, failures: i64, now: i64) -> i64 {
    now + (connection_retry_interval(ts, failures)
        .duration()
        .as_millis() as i64)
        .max(1000)
}

/// When a recipient deferred by a per-message failure (a 4xx reply to its
/// RCPT or to the message) is tried again, from `now` (ms).
pub fn message_retry_at(ts: &TransportSettings, now: i64) -> i64 {
    now + ts.message_retry_interval.duration().as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::builder::SnapshotBuilder;
    use crate::model::Role;
    use serde_json::json;

    #[test]
    fn glitch_then_transient_then_outbound_connection_failure_intervals() {
        let snap = SnapshotBuilder::new(Role::Hub)
            .with_transport(
                json!({"queueGlitchRetryCount": 2, "queueGlitchRetryInterval": "00:00:30",
                "transientFailureRetryCount": 3, "transientFailureRetryInterval": "00:05:00",
                "outboundConnectionFailureRetryInterval": "00:10:00"}),
            )
            .build();
        let ts = &snap.transport.spec;
        let mins = |f| connection_retry_interval(ts, f).duration().as_secs();
        assert_eq!([1, 2].map(mins), [30, 30], "glitch retries");
        assert_eq!([3, 4, 5].map(mins), [300, 300, 300], "transient retries");
        assert_eq!(
            [6, 7, 100].map(mins),
            [600, 600, 600],
            "then the slow interval"
        );
        assert_eq!(connection_retry_at(ts, 1, 1_000), 31_000);
    }

    #[test]
    fn role_defaults_follow_the_spec() {
        let edge = SnapshotBuilder::new(Role::Edge).build();
        let hub = SnapshotBuilder::new(Role::Hub).build();
        let secs =
            |ts: &TransportSettings, f| connection_retry_interval(ts, f).duration().as_secs();
        let (edge, hub) = (&edge.transport.spec, &hub.transport.spec);
        // Spec §1.7: 4 glitch retries a minute apart, 6 transient ones (Edge
        // 10 min, Hub 5 min), then 30 min on an Edge and 10 min on a Hub.
        assert_eq!(secs(edge, 4), 60);
        assert_eq!(secs(edge, 5), 600);
        assert_eq!(secs(hub, 5), 300);
        assert_eq!(secs(edge, 11), 1800);
        assert_eq!(secs(hub, 11), 600);
        assert_eq!(message_retry_at(hub, 0), 60_000);
    }

    #[test]
    fn a_retry_is_never_sooner_than_a_second() {
        let snap = SnapshotBuilder::new(Role::Edge)
            .with_transport(json!({"queueGlitchRetryInterval": "00:00:01"}))
            .build();
        assert_eq!(connection_retry_at(&snap.transport.spec, 1, 0), 1000);
    }
}
