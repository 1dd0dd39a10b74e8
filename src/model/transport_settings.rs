//! Server-wide transport settings (spec §1.7, with the org-level postmaster
//! of §1.8): retry schedule, expiry, DNS servers. One object per server.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use utoipa::ToSchema;

use super::domain::Domain;
use super::error::{Errors, Invalid, in_range};
use super::limit::{Limit, check_limit};
use super::timespan::{Timespan, check_range};
use super::{Role, ServerContext};

/// A DNS server, `ip` or `ip:port` (`[ipv6]:port`); port 53 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DnsServer(pub SocketAddr);

impl FromStr for DnsServer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(DnsServer(a));
        }
        s.parse::<IpAddr>()
            .map(|ip| DnsServer(SocketAddr::new(ip, 53)))
            .map_err(|_| format!("'{s}' is not a DNS server: write ip, ip:port or [ipv6]:port"))
    }
}

impl fmt::Display for DnsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

string_type!(
    DnsServer,
    "A DNS server: `ip`, `ip:port` or `[ipv6]:port` (port 53 by default).",
    "127.0.0.1:5353",
    Some(super::schema::dns_server_pattern()),
    Some(53)
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportSettings {
    /// This server's FQDN: the default for every connector's `fqdn`.
    pub server_fqdn: Domain,
    /// Sender of DSNs. `null`: `postmaster@<server FQDN>` on an Edge,
    /// `postmaster@<default accepted domain>` on a Hub.
    #[schema(schema_with = super::schema::optional_email_address)]
    pub external_postmaster_address: Option<String>,
    /// Glitch retries before the transient schedule (4).
    #[schema(minimum = 0, maximum = 15)]
    pub queue_glitch_retry_count: u32,
    #[schema(schema_with = super::schema::timespan_1s_1h)]
    pub queue_glitch_retry_interval: Timespan,
    /// 0–15.
    #[schema(minimum = 0, maximum = 15)]
    pub transient_failure_retry_count: u32,
    /// 1 s–12 h; Hub 5 min, Edge 10 min.
    #[schema(schema_with = super::schema::timespan_1s_12h)]
    pub transient_failure_retry_interval: Timespan,
    /// 1 s–20 d; Hub 10 min, Edge 30 min.
    #[schema(schema_with = super::schema::timespan_1s_20d)]
    pub outbound_connection_failure_retry_interval: Timespan,
    /// Retry after a per-message failure, 1 s–1 d.
    #[schema(schema_with = super::schema::timespan_1s_1d)]
    pub message_retry_interval: Timespan,
    /// Undelivered longer than this → NDR `4.4.7`; 5 s–90 d.
    #[schema(schema_with = super::schema::timespan_5s_90d)]
    pub message_expiration_timeout: Timespan,
    /// A delay DSN goes out after this; must exceed the transient schedule.
    #[schema(schema_with = super::schema::timespan_1s_90d)]
    pub delay_notification_timeout: Timespan,
    /// A queue in Retry with no delivery for this long is routed again.
    #[schema(schema_with = super::schema::timespan_1s_90d)]
    pub max_idle_time_before_resubmit: Timespan,
    #[schema(schema_with = super::schema::limit_from_1)]
    pub max_outbound_connections: Limit,
    #[schema(schema_with = super::schema::limit_from_1)]
    pub max_per_domain_outbound_connections: Limit,
    /// DNS servers for send connectors with useExternalDNSServersEnabled.
    #[serde(rename = "externalDNSServers")]
    #[schema(rename = "externalDNSServers")]
    pub external_dns_servers: Vec<DnsServer>,
    /// DNS servers for smart hosts and internal names; empty means the
    /// system resolver.
    #[serde(rename = "internalDNSServers")]
    #[schema(rename = "internalDNSServers")]
    pub internal_dns_servers: Vec<DnsServer>,
    /// SMTP servers of the organisation in front of this one (Exchange's
    /// InternalSMTPServers): their sessions are internal mail to the
    /// anti-spam agents.
    #[serde(rename = "internalSMTPServers", default)]
    #[schema(rename = "internalSMTPServers")]
    pub internal_smtp_servers: Vec<super::IpRange>,
    /// Address written into Received headers instead of the local one.
    #[serde(rename = "externalIPAddress")]
    #[schema(rename = "externalIPAddress")]
    #[schema(schema_with = super::schema::optional_ip_address)]
    pub external_ip_address: Option<IpAddr>,
    pub external_delay_dsn_enabled: bool,
    pub internal_delay_dsn_enabled: bool,
    /// Bytes of original message attached to an NDR; larger → headers only.
    #[schema(minimum = 0, maximum = 2147483647)]
    pub external_dsn_max_message_attach_size: u64,
    /// TLS reports (RFC 8460): outbound TLS sessions to domains with an
    /// MTA-STS policy are counted and, once a day (UTC), reported to the
    /// `rua` of each domain's `_smtp._tls` record, from the postmaster
    /// address. Off by default.
    #[serde(default)]
    pub tls_reports_enabled: bool,
    /// Record message tracking events (spec §1.7).
    #[serde(default = "yes")]
    pub message_tracking_log_enabled: bool,
    /// Tracking events older than this are deleted; `00:00:00` keeps them.
    #[serde(default = "thirty_days")]
    #[schema(schema_with = super::schema::timespan_0_24855d)]
    pub message_tracking_log_max_age: Timespan,
    /// Record the Subject header in tracking events.
    #[serde(default = "yes")]
    pub message_tracking_log_subject_logging_enabled: bool,
    /// Receive protocol log files older than this are deleted; `00:00:00` keeps them.
    #[serde(default = "thirty_days")]
    #[schema(schema_with = super::schema::timespan_0_24855d)]
    pub receive_protocol_log_max_age: Timespan,
    /// The receive protocol log directory is kept under this many bytes
    /// (oldest files deleted first).
    #[serde(default = "max_directory_size")]
    #[schema(schema_with = super::schema::limit_from_1kib)]
    pub receive_protocol_log_max_directory_size: Limit,
    /// A receive protocol log file is closed at this size and the next
    /// one (`RECVyyyymmdd-n.log`, n + 1) begun.
    #[serde(default = "max_file_size")]
    #[schema(schema_with = super::schema::limit_from_1kib)]
    pub receive_protocol_log_max_file_size: Limit,
    #[serde(default = "thirty_days")]
    #[schema(schema_with = super::schema::timespan_0_24855d)]
    pub send_protocol_log_max_age: Timespan,
    #[serde(default = "max_directory_size")]
    #[schema(schema_with = super::schema::limit_from_1kib)]
    pub send_protocol_log_max_directory_size: Limit,
    #[serde(default = "max_file_size")]
    #[schema(schema_with = super::schema::limit_from_1kib)]
    pub send_protocol_log_max_file_size: Limit,
    /// Failed AUTH attempts from one client address, across sessions and
    /// connectors, after which AUTH from that address gets `454 4.7.0`
    /// until the oldest failure leaves the window. 0 turns it off. On top
    /// of each connector's per-session maxLogonFailures.
    #[serde(default = "lockout_threshold")]
    #[schema(minimum = 0, maximum = 100000)]
    pub auth_failure_lockout_threshold: u32,
    /// How long a failed AUTH counts toward the lockout.
    #[serde(default = "lockout_window")]
    #[schema(schema_with = super::schema::timespan_1s_1d)]
    pub auth_failure_lockout_window: Timespan,
    /// Shortest password a login of principal `Server` may have: such a
    /// login carries relay rights on the default connectors.
    #[serde(default = "min_server_password")]
    #[schema(minimum = 1, maximum = 1024)]
    pub min_server_password_length: u32,
    /// Back pressure (Exchange's name): while free space on the file system
    /// of the data directory is below this percentage, new MAIL gets
    /// `452 4.3.1 Insufficient system resources`. 0 turns it off.
    #[serde(default = "min_free_disk")]
    #[schema(minimum = 0, maximum = 100)]
    pub back_pressure_min_free_disk_percent: u32,
    /// Back pressure on memory: while Ferry's resident memory is above
    /// this many bytes, new MAIL gets `452 4.3.1`. The default is 75% of
    /// the machine's memory at first start; `unlimited` turns it off.
    #[serde(default = "max_memory")]
    #[schema(schema_with = super::schema::limit_from_1mib)]
    pub back_pressure_max_memory: Limit,
}

// Defaults of the logging settings, also for configurations stored before
// they existed.
fn yes() -> bool {
    true
}
fn thirty_days() -> Timespan {
    Timespan::from_days(30)
}
fn max_directory_size() -> Limit {
    Limit::Value(250 * 1024 * 1024)
}
fn max_file_size() -> Limit {
    Limit::Value(10 * 1024 * 1024)
}
fn lockout_threshold() -> u32 {
    20
}
fn lockout_window() -> Timespan {
    Timespan::from_mins(15)
}
fn min_server_password() -> u32 {
    12
}
/// Exchange's "high" level for the queue's disk is 99% used.
fn min_free_disk() -> u32 {
    1
}
/// 75% of physical memory, or unlimited where it cannot be read.
fn max_memory() -> Limit {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads system parameters.
        let (pages, size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && size > 0 {
            return Limit::Value(pages as u64 * size as u64 / 4 * 3);
        }
    }
    Limit::Unlimited
}

impl TransportSettings {
    /// The DNS servers for lookups about the outside world (DNS lists,
    /// SPF, DKIM, DMARC): the external ones, or the internal ones when no
    /// external servers are set (the system's when neither is).
    pub fn external_lookup_servers(&self) -> Vec<std::net::SocketAddr> {
        if self.external_dns_servers.is_empty() {
            self.internal_dns_servers.iter().map(|s| s.0).collect()
        } else {
            self.external_dns_servers.iter().map(|s| s.0).collect()
        }
    }

    pub fn defaults(role: Role, fqdn: Domain) -> Self {
        let edge = role == Role::Edge;
        TransportSettings {
            server_fqdn: fqdn,
            external_postmaster_address: None,
            queue_glitch_retry_count: 4,
            queue_glitch_retry_interval: Timespan::from_mins(1),
            transient_failure_retry_count: 6,
            transient_failure_retry_interval: Timespan::from_mins(if edge { 10 } else { 5 }),
            outbound_connection_failure_retry_interval: Timespan::from_mins(if edge {
                30
            } else {
                10
            }),
            // Exchange 2010's value (spec §1.7); 2013+ uses 15 min.
            message_retry_interval: Timespan::from_mins(1),
            message_expiration_timeout: Timespan::from_days(2),
            delay_notification_timeout: Timespan::from_hours(4),
            max_idle_time_before_resubmit: Timespan::from_hours(12),
            max_outbound_connections: Limit::Value(1000),
            max_per_domain_outbound_connections: Limit::Value(40),
            external_dns_servers: vec![],
            internal_dns_servers: vec![],
            internal_smtp_servers: vec![],
            external_ip_address: None,
            external_delay_dsn_enabled: true,
            internal_delay_dsn_enabled: true,
            external_dsn_max_message_attach_size: 10 * 1024 * 1024,
            message_tracking_log_enabled: true,
            message_tracking_log_max_age: thirty_days(),
            message_tracking_log_subject_logging_enabled: true,
            receive_protocol_log_max_age: thirty_days(),
            receive_protocol_log_max_directory_size: max_directory_size(),
            receive_protocol_log_max_file_size: max_file_size(),
            send_protocol_log_max_age: thirty_days(),
            send_protocol_log_max_directory_size: max_directory_size(),
            send_protocol_log_max_file_size: max_file_size(),
            auth_failure_lockout_threshold: lockout_threshold(),
            auth_failure_lockout_window: lockout_window(),
            min_server_password_length: min_server_password(),
            back_pressure_min_free_disk_percent: min_free_disk(),
            back_pressure_max_memory: max_memory(),
            tls_reports_enabled: false,
        }
    }

    pub fn patched(&self, patch: &Value) -> Result<Self, Invalid> {
        let s: Self = super::apply_patch(self, patch, &[])?;
        s.validate()?;
        Ok(s)
    }

    /// The postmaster address in force.
    pub fn postmaster(&self, ctx: &ServerContext, default_domain: Option<&str>) -> String {
        if let Some(a) = &self.external_postmaster_address {
            return a.clone();
        }
        match (ctx.role, default_domain) {
            (Role::Hub, Some(d)) => format!("postmaster@{d}"),
            _ => format!("postmaster@{}", self.server_fqdn),
        }
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut e = Errors::default();
        if let Some(a) = &self.external_postmaster_address {
            let ok = a.rsplit_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && local.len() <= 64
                    && local
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:@\"".contains(&b))
                    && domain.parse::<Domain>().is_ok()
            });
            e.check(
                !ok,
                "externalPostmasterAddress",
                "must be an address like postmaster@contoso.com",
            );
        }
        let sec = Timespan::from_secs(1);
        in_range(
            &mut e,
            "authFailureLockoutThreshold",
            self.auth_failure_lockout_threshold,
            0,
            100_000,
        );
        check_range(
            &mut e,
            "authFailureLockoutWindow",
            self.auth_failure_lockout_window,
            sec,
            Timespan::from_days(1),
        );
        in_range(
            &mut e,
            "backPressureMinFreeDiskPercent",
            self.back_pressure_min_free_disk_percent,
            0,
            100,
        );
        check_limit(
            &mut e,
            "backPressureMaxMemory",
            self.back_pressure_max_memory,
            1024 * 1024,
            u64::MAX,
            true,
        );
        in_range(
            &mut e,
            "minServerPasswordLength",
            self.min_server_password_length,
            1,
            1024,
        );
        in_range(
            &mut e,
            "queueGlitchRetryCount",
            self.queue_glitch_retry_count,
            0,
            15,
        );
        check_range(
            &mut e,
            "queueGlitchRetryInterval",
            self.queue_glitch_retry_interval,
            sec,
            Timespan::from_hours(1),
        );
        in_range(
            &mut e,
            "transientFailureRetryCount",
            self.transient_failure_retry_count,
            0,
            15,
        );
        check_range(
            &mut e,
            "transientFailureRetryInterval",
            self.transient_failure_retry_interval,
            sec,
            Timespan::from_hours(12),
        );
        check_range(
            &mut e,
            "outboundConnectionFailureRetryInterval",
            self.outbound_connection_failure_retry_interval,
            sec,
            Timespan::from_days(20),
        );
        check_range(
            &mut e,
            "messageRetryInterval",
            self.message_retry_interval,
            sec,
            Timespan::from_days(1),
        );
        check_range(
            &mut e,
            "messageExpirationTimeout",
            self.message_expiration_timeout,
            Timespan::from_secs(5),
            Timespan::from_days(90),
        );
        check_range(
            &mut e,
            "delayNotificationTimeout",
            self.delay_notification_timeout,
            sec,
            Timespan::from_days(90),
        );
        let schedule = self.transient_failure_retry_interval.as_secs()
            * self.transient_failure_retry_count as u64;
        if self.delay_notification_timeout.as_secs() <= schedule {
            e.joint(
                "delayNotificationTimeout",
                &[
                    "transientFailureRetryCount",
                    "transientFailureRetryInterval",
                ],
                format!(
                    "must exceed transientFailureRetryCount × transientFailureRetryInterval ({})",
                    Timespan::from_secs(schedule)
                ),
            );
        }
        check_range(
            &mut e,
            "maxIdleTimeBeforeResubmit",
            self.max_idle_time_before_resubmit,
            sec,
            Timespan::from_days(90),
        );
        check_limit(
            &mut e,
            "maxOutboundConnections",
            self.max_outbound_connections,
            1,
            2_147_483_647,
            true,
        );
        check_limit(
            &mut e,
            "maxPerDomainOutboundConnections",
            self.max_per_domain_outbound_connections,
            1,
            2_147_483_647,
            true,
        );
        in_range(
            &mut e,
            "externalDsnMaxMessageAttachSize",
            self.external_dsn_max_message_attach_size,
            0,
            2_147_483_647,
        );
        // Exchange's ranges: ages 00:00:00 (no removal by age) to 24855 days.
        for (field, age) in [
            (
                "messageTrackingLogMaxAge",
                self.message_tracking_log_max_age,
            ),
            (
                "receiveProtocolLogMaxAge",
                self.receive_protocol_log_max_age,
            ),
            ("sendProtocolLogMaxAge", self.send_protocol_log_max_age),
        ] {
            check_range(
                &mut e,
                field,
                age,
                Timespan::from_secs(0),
                Timespan::from_days(24855),
            );
        }
        for (prefix, dir, file) in [
            (
                "receiveProtocolLog",
                self.receive_protocol_log_max_directory_size,
                self.receive_protocol_log_max_file_size,
            ),
            (
                "sendProtocolLog",
                self.send_protocol_log_max_directory_size,
                self.send_protocol_log_max_file_size,
            ),
        ] {
            let dir_field = format!("{prefix}MaxDirectorySize");
            let file_field = format!("{prefix}MaxFileSize");
            check_limit(&mut e, &dir_field, dir, 1024, i64::MAX as u64, true);
            check_limit(&mut e, &file_field, file, 1024, i64::MAX as u64, true);
            if let (Some(d), Some(f)) = (dir.value(), file.value()) {
                e.check(
                    f > d,
                    &file_field,
                    format!("must not exceed {dir_field} ({d})"),
                );
            }
        }
        e.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn role_defaults_differ_as_spec_1_7_says() {
        let f: Domain = "x.test".parse().unwrap();
        let edge = TransportSettings::defaults(Role::Edge, f.clone());
        let hub = TransportSettings::defaults(Role::Hub, f);
        assert_eq!(
            edge.transient_failure_retry_interval.to_string(),
            "00:10:00"
        );
        assert_eq!(hub.transient_failure_retry_interval.to_string(), "00:05:00");
        assert_eq!(
            edge.outbound_connection_failure_retry_interval.to_string(),
            "00:30:00"
        );
        assert_eq!(
            hub.outbound_connection_failure_retry_interval.to_string(),
            "00:10:00"
        );
        edge.validate().unwrap();
        hub.validate().unwrap();
    }

    #[test]
    fn delay_notification_must_exceed_schedule() {
        let s = TransportSettings::defaults(Role::Edge, "x.test".parse().unwrap());
        let e = s
            .patched(&json!({"delayNotificationTimeout": "00:30:00"}))
            .unwrap_err();
        assert_eq!(e.first_field(), "delayNotificationTimeout");
    }

    #[test]
    fn dns_servers_take_optional_ports() {
        let s = TransportSettings::defaults(Role::Edge, "x.test".parse().unwrap());
        let s = s
            .patched(&json!({"externalDNSServers": ["127.0.0.1:5353", "::1"]}))
            .unwrap();
        assert_eq!(s.external_dns_servers[1].0.port(), 53);
        assert!(
            s.patched(&json!({"externalDNSServers": ["dns.example"]}))
                .is_err()
        );
    }
}
