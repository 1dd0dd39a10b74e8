//! Delivery into mailboxes (Hub): Maildir, or an LMTP/SMTP mail store.

use super::*;

impl DeliveryEngine {
    pub(super) async fn deliver_mailbox(
        &self,
        snap: &Snapshot,
        hop: &str,
        domain: &str,
        batch: &[i64],
    ) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        let target = snap
            .accepted_domains
            .iter()
            .find(|d| d.spec.domain_name.domain().as_str() == domain)
            .and_then(|d| d.spec.mailbox_delivery.clone());
        let Some(target) = target else {
            db::unroute(pool, None, Some(hop)).await?;
            return Ok(());
        };
        use crate::model::MailboxDelivery as M;
        match target {
            M::Maildir => {
                for id in batch {
                    let Some(m) = db::message(pool, *id).await? else {
                        continue;
                    };
                    let body = db::body(pool, *id).await?.unwrap_or_default();
                    for r in db::pending_for_hop(pool, *id, hop).await? {
                        let (dir, sender, rcpt) =
                            (self.data_dir.clone(), m.sender.clone(), r.address.clone());
                        let b = body.clone();
                        let written = tokio::task::spawn_blocking(move || {
                            crate::queue::mailbox::deliver(&dir, &sender, &rcpt, &b)
                        })
                        .await?;
                        match written {
                            Ok(path) => {
                                db::set_recipient(
                                    pool,
                                    *id,
                                    r.idx,
                                    RecipientStatus::Delivered,
                                    Some("250 2.0.0 delivered to Maildir"),
                                    Some("Maildir"),
                                    0,
                                )
                                .await?;
                                tracing::info!(internal_id = id, recipient = %r.address, path = %path.display(), event = "DELIVER", "delivery");
                                self.observe.metrics.delivered("mailbox", age(&m));
                                self.observe.tracking.record(Event {
                                    connector: Some("mailbox".into()),
                                    next_hop: Some(domain.to_string()),
                                    detail: Some("250 2.0.0 delivered to Maildir".into()),
                                    ..event("DELIVER", "STOREDRIVER", &m, vec![r.address.clone()])
                                });
                            }
                            Err(e) => {
                                self.observe.metrics.deferred("mailbox");
                                self.observe.tracking.record(Event {
                                    connector: Some("mailbox".into()),
                                    next_hop: Some(domain.to_string()),
                                    detail: Some(format!("451 4.3.0 Maildir write failed: {e}")),
                                    ..event("DEFER", "STOREDRIVER", &m, vec![r.address.clone()])
                                });
                                let retry = retry_at(snap);
                                db::set_recipient(
                                    pool,
                                    *id,
                                    r.idx,
                                    RecipientStatus::Retry,
                                    Some(&format!("451 4.3.0 Maildir write failed: {e}")),
                                    None,
                                    retry,
                                )
                                .await?;
                            }
                        }
                    }
                    self.finish(snap, *id).await?;
                }
                Ok(())
            }
            M::Lmtp { host } | M::Smtp { host } => {
                let lmtp = hop_is_lmtp(snap, domain);
                let (h, port) = crate::model::accepted_domain::split_host_port(&host)
                    .ok_or_else(|| anyhow::anyhow!("bad mailbox host {host}"))?;
                let ips = match &h {
                    Host::Ip(ip) => vec![*ip],
                    Host::Name(n) => {
                        let internal: Vec<SocketAddr> = snap
                            .transport
                            .spec
                            .internal_dns_servers
                            .iter()
                            .map(|s| s.0)
                            .collect();
                        match self.dns.addresses(&internal, n.as_str()).await {
                            Ok(a) => a,
                            Err(e) => {
                                let DnsError::Transient(e) = e.into_transient() else {
                                    unreachable!("into_transient gives a transient error")
                                };
                                return self.connection_failed(snap, hop, batch, &e).await;
                            }
                        }
                    }
                };
                let cfg = ClientConfig {
                    helo_name: snap.ctx.fqdn.to_string(),
                    force_helo: false,
                    lmtp,
                    tls: if lmtp {
                        TlsPolicy::Ignore
                    } else {
                        TlsPolicy::Opportunistic
                    },
                    auth: None,
                    auth_requires_tls: false,
                    timeout: Duration::from_secs(60),
                    source_ip: self.source_ip,
                    observe: Some(ClientObserve {
                        observer: self.observe.clone(),
                        connector: format!("Mailbox delivery {domain}"),
                        verbose: false,
                    }),
                };
                let mut last = String::new();
                for ip in ips {
                    match SmtpClient::open(SocketAddr::new(ip, port), &h.to_string(), &cfg).await {
                        Ok(mut client) => {
                            self.connected(hop).await?;
                            let remote = format!("{h} [{ip}]");
                            for id in batch {
                                if !self.send_one(snap, hop, &mut client, &remote, *id).await? {
                                    break;
                                }
                            }
                            client.quit().await;
                            return Ok(());
                        }
                        Err(e) => last = e.to_string(),
                    }
                }
                self.connection_failed(snap, hop, batch, &last).await
            }
        }
    }
}
