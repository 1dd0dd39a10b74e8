//! The Sender Id agent at the end of data: SPF, DKIM, ARC and DMARC
//! verdicts (`agents::sender_auth`) in one Authentication-Results header,
//! what the configuration makes of them, and the ARC seal of a message an
//! agent changed after it was verified.

use tokio::io::{AsyncRead, AsyncWrite};

use super::super::{Next, Session, Transaction};
use super::*;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// The Sender Id agent: SPF, DKIM, ARC and DMARC verdicts in one
    /// Authentication-Results header (any arriving header that claims our
    /// authserv-id removed first), and what the configuration makes of them.
    pub(super) async fn sender_id(
        &mut self,
        draft: &mut Draft,
        tx: &mut Transaction,
    ) -> Result<(), Next> {
        use crate::agents::sender_auth::{self, Envelope};
        let snap = self.snap.clone();
        let cfg = &snap.anti_spam.sender_id_config.spec;
        let fqdn = self.fqdn();
        let authserv_id = cfg.authserv_id.clone().unwrap_or_else(|| fqdn.clone());
        if !self.origin().filtered(
            cfg.enabled,
            cfg.external_mail_enabled,
            cfg.internal_mail_enabled,
        ) {
            return Ok(());
        }
        let sender_domain = tx.sender.domain().unwrap_or("").to_string();
        if !sender_domain.is_empty() && cfg.bypasses_sender(&sender_domain) {
            return Ok(());
        }
        let Ok(raw) = draft.bytes() else {
            return Err(self.reply(replies::QUEUE_FAILED).await);
        };
        let ts = &snap.transport.spec;
        let servers = ts.external_lookup_servers();
        let helo = self.helo.clone().unwrap_or_default();
        let ip = self.remote.ip();
        let sender = tx.sender.to_string();
        let verdict = self
            .shared
            .agents
            .verifier
            .verify(
                &servers,
                &authserv_id,
                &fqdn,
                &raw,
                &Envelope {
                    ip,
                    helo: &helo,
                    sender: &sender,
                },
                cfg.dns_timeout.duration(),
            )
            .await;
        tx.stamps.push(verdict.header.trim_end().to_string());
        draft.verified = Some(raw);
        let metrics = &self.shared.observe.metrics;
        for (method, word) in [
            ("spf", sender_auth::spf_word(verdict.spf)),
            ("dkim", verdict.dkim),
            ("dmarc", verdict.dmarc),
            ("arc", verdict.arc),
        ] {
            metrics.agent_action("Sender Id Agent", &format!("{method}={word}"));
        }
        let rcpts = addresses(tx);
        let summary = verdict.summary();
        self.report_agent(
            AgentName::SenderId,
            "Verified",
            &summary,
            &tx.sender.clone(),
            rcpts.clone(),
        );
        let mut outcome = Outcome::default();
        let acted = self
            .sender_id_act(&verdict, draft, tx, &rcpts, &mut outcome)
            .await;
        if cfg.dmarc_reports_enabled
            && let Some((published, mut seen)) = verdict.report
        {
            seen.disposition = outcome.disposition.to_string();
            seen.reasons = outcome.reasons;
            self.shared.agents.dmarc_reports.count(published, seen);
        }
        acted
    }

    /// What the Sender Id configuration makes of the verdicts: refused,
    /// quarantined, dropped or only stamped; `outcome` says what DMARC's
    /// aggregate report is to show of it.
    async fn sender_id_act(
        &mut self,
        verdict: &crate::agents::sender_auth::Verdict,
        draft: &mut Draft,
        tx: &mut Transaction,
        rcpts: &[String],
        outcome: &mut Outcome,
    ) -> Result<(), Next> {
        use crate::model::sender_id::{SpoofedDomainAction, TempErrorAction};
        use mail_auth::SpfResult;
        use mail_auth::dmarc::Policy;
        let snap = self.snap.clone();
        let cfg = &snap.anti_spam.sender_id_config.spec;
        let ip = self.remote.ip();
        let rcpts = rcpts.to_vec();
        // Trusted forwarders, and mail only for bypassed recipients, are
        // checked and stamped, never refused.
        let forwarder = cfg.trusted_forwarders.iter().any(|r| r.contains_ip(ip));
        let bypassed = rcpts.iter().all(|r| {
            cfg.bypassed_recipients
                .iter()
                .any(|b| b.eq_ignore_ascii_case(r))
        });
        let failed = verdict.dmarc == "fail" && verdict.dmarc_policy != Policy::None;
        if forwarder || bypassed {
            if failed {
                outcome.reasons.push(if forwarder {
                    ("trusted_forwarder".into(), None)
                } else {
                    ("local_policy".into(), Some("bypassed recipient".into()))
                });
            }
            return Ok(());
        }
        if failed && !cfg.dmarc_honor_policy {
            outcome
                .reasons
                .push(("local_policy".into(), Some("policy not enforced".into())));
        }
        let sender_addr = tx.sender.clone();
        if verdict.dmarc == "fail" && cfg.dmarc_honor_policy {
            if let Some(sealer) = verdict
                .arc_sealer
                .as_deref()
                .filter(|s| cfg.trusts_sealer(s))
            {
                self.report_agent(
                    AgentName::SenderId,
                    "DmarcOverride",
                    &format!("ARC sealed by trusted {sealer}"),
                    &sender_addr,
                    rcpts,
                );
                outcome.reasons.push((
                    "local_policy".into(),
                    Some(format!("arc=pass as.d={sealer}")),
                ));
                return Ok(());
            }
            match verdict.dmarc_policy {
                Policy::Reject => {
                    let why = format!(
                        "Email rejected per DMARC policy for {}",
                        verdict.from_domain
                    );
                    self.report_agent(AgentName::SenderId, "Reject", &why, &sender_addr, rcpts);
                    outcome.disposition = "reject";
                    return Err(self.reply(Reply::new(550, "5.7.1", why)).await);
                }
                Policy::Quarantine => {
                    let filter = &snap.anti_spam.content_filter_config.spec;
                    let why = format!("DMARC policy quarantine for {}", verdict.from_domain);
                    outcome.disposition = "quarantine";
                    self.report_agent(
                        AgentName::SenderId,
                        "Quarantine",
                        &why,
                        &sender_addr,
                        rcpts.clone(),
                    );
                    match &filter.quarantine_mailbox {
                        Some(mailbox) => {
                            tx.recipients.clear();
                            quarantine(tx, mailbox, &rcpts);
                        }
                        // Without a quarantine mailbox: to the Junk folder.
                        None => {
                            let junk = filter.scl_junk_threshold as i8;
                            draft.scl = Some(draft.scl.map_or(junk, |s| s.max(junk)));
                        }
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
        match verdict.spf {
            SpfResult::Fail => match cfg.spoofed_domain_action {
                SpoofedDomainAction::StampStatus => Ok(()),
                SpoofedDomainAction::Reject => {
                    let why = format!(
                        "SPF validation failed: {} does not permit {ip} to send its mail",
                        verdict.spf_domain
                    );
                    self.report_agent(AgentName::SenderId, "Reject", &why, &sender_addr, rcpts);
                    outcome.local("reject", "SPF fail refused");
                    Err(self.reply(Reply::new(550, "5.7.23", why)).await)
                }
                SpoofedDomainAction::Delete => {
                    self.report_agent(
                        AgentName::SenderId,
                        "Delete",
                        "SPF fail",
                        &sender_addr,
                        rcpts,
                    );
                    outcome.local("reject", "SPF fail deleted");
                    Err(self.silently_dropped().await)
                }
            },
            SpfResult::TempError => match cfg.temp_error_action {
                TempErrorAction::StampStatus => Ok(()),
                TempErrorAction::Reject => {
                    self.report_agent(
                        AgentName::SenderId,
                        "TempFail",
                        "SPF temperror",
                        &sender_addr,
                        rcpts,
                    );
                    outcome.local("reject", "SPF temperror deferred");
                    Err(self
                        .reply(Reply::new(
                            451,
                            "4.7.24",
                            "SPF could not be checked now, try again later",
                        ))
                        .await)
                }
                TempErrorAction::Delete => {
                    self.report_agent(
                        AgentName::SenderId,
                        "Delete",
                        "SPF temperror",
                        &sender_addr,
                        rcpts,
                    );
                    outcome.local("reject", "SPF temperror deleted");
                    Err(self.silently_dropped().await)
                }
            },
            _ => Ok(()),
        }
    }

    /// ARC (RFC 8617): a message the Sender Id agent verified and an agent
    /// then changed is sealed, with the key of this server's domain (the
    /// server FQDN's, or the default accepted domain's, active DKIM key), so
    /// that the next hop can still trust what was verified here. Without a
    /// key, or over a chain that failed, it is not sealed.
    pub(super) async fn arc_seal(
        &mut self,
        draft: &mut Draft,
        tx: &mut Transaction,
        original: &[u8],
    ) {
        let snap = self.snap.clone();
        let key = snap
            .dkim_key_for(snap.transport.spec.server_fqdn.as_str())
            .or_else(|| {
                snap.default_domain()
                    .and_then(|d| snap.dkim_key_for(d.spec.domain_name.domain().as_str()))
            });
        let Some(key) = key else {
            return;
        };
        let Ok(private) = self.shared.config.secrets.open(
            &key.id.to_string(),
            key.secret.as_deref().unwrap_or_default(),
        ) else {
            tracing::error!(key = %key.spec.record_name(), "the ARC key cannot be opened");
            return;
        };
        let Ok(modified) = draft.bytes() else {
            return;
        };
        let cfg = &snap.anti_spam.sender_id_config.spec;
        let fqdn = self.fqdn();
        let authserv_id = cfg.authserv_id.clone().unwrap_or_else(|| fqdn.clone());
        let ts = &snap.transport.spec;
        let servers = ts.external_lookup_servers();
        let helo = self.helo.clone().unwrap_or_default();
        let sender = tx.sender.to_string();
        let sealed = self
            .shared
            .agents
            .verifier
            .seal(
                &servers,
                &authserv_id,
                &fqdn,
                original,
                &modified,
                &crate::agents::sender_auth::Envelope {
                    ip: self.remote.ip(),
                    helo: &helo,
                    sender: &sender,
                },
                cfg.dns_timeout.duration(),
                crate::agents::sender_auth::SealKey {
                    private: &private,
                    domain: key.spec.domain.as_str(),
                    selector: &key.spec.selector,
                },
            )
            .await;
        match sealed {
            Ok(Some(set)) => {
                let (sender, rcpts) = (tx.sender.clone(), addresses(tx));
                self.report_agent(
                    AgentName::SenderId,
                    "ArcSealed",
                    &format!("d={} s={}", key.spec.domain, key.spec.selector),
                    &sender,
                    rcpts,
                );
                tx.stamps.push(set.trim_end().to_string());
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "ARC sealing failed"),
        }
    }
}

/// What DMARC's aggregate report shows of the agent's decision.
struct Outcome {
    /// none, quarantine or reject.
    disposition: &'static str,
    /// RFC 7489's PolicyOverrideReason: (type, comment).
    reasons: Vec<(String, Option<String>)>,
}

impl Default for Outcome {
    fn default() -> Outcome {
        Outcome {
            disposition: "none",
            reasons: vec![],
        }
    }
}

impl Outcome {
    /// Refused or dropped by local policy, not by DMARC's.
    fn local(&mut self, disposition: &'static str, why: &str) {
        self.disposition = disposition;
        self.reasons
            .push(("local_policy".into(), Some(why.to_string())));
    }
}
