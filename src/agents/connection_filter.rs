//! The Connection Filtering agent (spec §1.9 and rule 33): the first of
//! the anti-spam agents. It judges the client's IP once per session, in
//! Exchange's order — the static IP Allow list, the static IP Block list,
//! the IP Allow list providers, then the IP Block list providers by
//! priority, where the first provider that matches stops the scan.
//!
//! An allow-list hit lets the session past the other anti-spam agents. A
//! block-list hit does not end the session at once: each recipient is
//! refused with the list's reply (`550 5.7.1 …`) except the provider's
//! bypassed recipients, and when the client goes on after its RCPTs with
//! nothing accepted, it hears the reply once more and the connection closes
//! (the session code applies this; see `smtp/server/session/rcpt.rs`).

use time::OffsetDateTime;

use super::dnsbl::Answer;
use super::{Agents, SessionInfo};
use crate::model::anti_spam::{AgentName, IpList, STATIC_ENTRY_REJECTION};

/// Connection Filtering's judgement of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not listed, or not filtered.
    Pass,
    /// On an allow list: the other anti-spam agents are skipped.
    Allowed,
    /// On a block list: recipients are refused with `550 5.7.1 <text>`,
    /// except those bypassed.
    Blocked { text: String, bypassed: Vec<String> },
}

impl Verdict {
    pub fn bypasses(&self, recipient: &str) -> bool {
        match self {
            Verdict::Blocked { bypassed, .. } => {
                bypassed.iter().any(|r| r.eq_ignore_ascii_case(recipient))
            }
            _ => true,
        }
    }
}

/// The original client behind upstream MTAs of the organisation: the
/// address in the `from … ([ip])` clause of the topmost Received header
/// written by a server not in `internal` (Exchange's reading of Received
/// headers behind InternalSMTPServers). `received` is newest first.
pub fn original_client(
    received: &[String],
    internal: &[crate::model::IpRange],
) -> Option<std::net::IpAddr> {
    for r in received {
        let from = r.split(" by ").next().unwrap_or("");
        let Some(open) = from.rfind('[') else {
            continue;
        };
        let inner = &from[open + 1..];
        let Some(close) = inner.find(']') else {
            continue;
        };
        let text = inner[..close]
            .trim_start_matches("IPv6:")
            .trim_start_matches("ipv6:");
        let Ok(ip) = text.parse::<std::net::IpAddr>() else {
            continue;
        };
        if !internal.iter().any(|r| r.contains_ip(ip)) {
            return Some(ip);
        }
    }
    None
}

/// Judges a session's client. Reports what it decides.
pub async fn judge(agents: &Agents, s: &SessionInfo<'_>) -> Verdict {
    let a = &s.snap.anti_spam;
    if !a.agents.spec.enabled(AgentName::ConnectionFiltering) {
        return Verdict::Pass;
    }
    let allow_on = s.origin.filtered_by(&a.ip_allow_list_config.spec);
    let block_on = s.origin.filtered_by(&a.ip_block_list_config.spec);
    let now = OffsetDateTime::now_utc();
    let ip = s.client_ip;
    let static_entry = |list: IpList| {
        a.ip_list_entries
            .iter()
            .find(|e| e.spec.list == list && e.spec.live(now) && e.spec.ip_range.contains_ip(ip))
    };
    let report = |action: &str, reason: String| {
        agents.report(
            s,
            AgentName::ConnectionFiltering,
            action,
            &reason,
            "",
            vec![],
        )
    };
    if allow_on && let Some(e) = static_entry(IpList::Allow) {
        report(
            "Allow",
            format!("on the IP Allow list ({})", e.spec.ip_range),
        );
        return Verdict::Allowed;
    }
    if block_on && let Some(e) = static_entry(IpList::Block) {
        let text = a
            .ip_block_list_config
            .spec
            .static_entry_rejection_response
            .as_deref()
            .unwrap_or(STATIC_ENTRY_REJECTION)
            .replace("%0", &ip.to_string());
        report(
            "Block",
            format!("on the IP Block list ({})", e.spec.ip_range),
        );
        return Verdict::Blocked {
            text,
            bypassed: vec![],
        };
    }
    for (list, on) in [(IpList::Allow, allow_on), (IpList::Block, block_on)] {
        if !on {
            continue;
        }
        for p in a
            .ip_list_providers
            .iter()
            .filter(|p| p.spec.list == list && p.spec.enabled)
        {
            let p = &p.spec;
            let name = p.query_name(ip);
            match agents
                .dnsbl
                .ask(s.snap, &name, p.lookup_timeout.duration())
                .await
            {
                Answer::Records(answers) if p.match_.hits(&answers) => {
                    let shown: Vec<String> = answers.iter().map(|a| a.to_string()).collect();
                    let reason = format!("listed by {} ({})", p.name, shown.join(", "));
                    return match list {
                        IpList::Allow => {
                            report("Allow", reason);
                            Verdict::Allowed
                        }
                        IpList::Block => {
                            report("Block", reason);
                            Verdict::Blocked {
                                text: p.rejection(ip, s.connector),
                                bypassed: p.bypassed_recipients.clone(),
                            }
                        }
                    };
                }
                Answer::Records(_) => {}
                Answer::Failed(e) => {
                    tracing::warn!(provider = %p.name, error = %e, "IP list provider did not answer; not listed");
                }
            }
        }
    }
    Verdict::Pass
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_client_is_the_first_address_outside_the_organisation() {
        let internal: Vec<crate::model::IpRange> =
            vec!["10.0.0.0/8".parse().unwrap(), "192.0.2.1".parse().unwrap()];
        let received = vec![
            "from relay.contoso.test (relay [192.0.2.1]) by edge (Ferry); Mon, 1 Jan 2026"
                .to_string(),
            "from inner (inner [10.1.2.3]) by relay.contoso.test; Mon, 1 Jan 2026".to_string(),
            "from mta.fabrikam.test (mta [198.51.100.66]) by inner ([10.1.2.3]); Mon".to_string(),
            "from laptop ([203.0.113.9]) by mta.fabrikam.test; Mon".to_string(),
        ];
        assert_eq!(
            original_client(&received, &internal),
            Some("198.51.100.66".parse().unwrap())
        );
        let v6 = vec!["from x ([IPv6:2001:db8::7]) by y".to_string()];
        assert_eq!(
            original_client(&v6, &internal),
            Some("2001:db8::7".parse().unwrap())
        );
        assert_eq!(original_client(&received[..2], &internal), None);
    }
}
