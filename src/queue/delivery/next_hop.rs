//! Next-hop resolution: the hosts to try for a queue, in order, with their
//! addresses (MX for DNS routing, the smart hosts otherwise).

use super::*;

impl DeliveryEngine {
    /// The hosts to try, in order, with their addresses.
    pub(super) async fn next_hop_hosts(
        &self,
        snap: &Snapshot,
        c: &SendConnector,
        display: &str,
    ) -> Result<Vec<(String, Vec<IpAddr>)>, DnsError> {
        let ts = &snap.transport.spec;
        let internal: Vec<SocketAddr> = ts.internal_dns_servers.iter().map(|s| s.0).collect();
        let external: Vec<SocketAddr> = ts.external_dns_servers.iter().map(|s| s.0).collect();
        let mut out = vec![];
        if c.dns_routing_enabled {
            let servers = if c.use_external_dns_servers_enabled && !external.is_empty() {
                &external
            } else {
                &internal
            };
            let mx = self.dns.mail_exchangers(servers, display).await?;
            let mut last = None;
            for host in mx {
                match self.dns.addresses(servers, &host).await {
                    Ok(a) => out.push((host, a)),
                    Err(e) => last = Some(e),
                }
            }
            if out.is_empty() {
                return Err(match last {
                    Some(DnsError::Permanent(e)) => DnsError::Permanent(e),
                    Some(DnsError::Transient(e)) => DnsError::Transient(e),
                    None => {
                        DnsError::Transient(format!("451 4.4.0 no mail exchanger for {display}"))
                    }
                });
            }
        } else {
            // Smart hosts are load-balanced: start with a random one, fail over in turn.
            let mut hosts = c.smart_hosts.clone();
            if !hosts.is_empty() {
                let start = rand::random::<usize>() % hosts.len();
                hosts.rotate_left(start);
            }
            let mut last = None;
            for h in hosts {
                match h {
                    Host::Ip(ip) => out.push((ip.to_string(), vec![ip])),
                    Host::Name(n) => match self.dns.addresses(&internal, n.as_str()).await {
                        Ok(mut a) => {
                            a.shuffle(&mut rand::thread_rng());
                            out.push((n.to_string(), a))
                        }
                        Err(e) => last = Some(e),
                    },
                }
            }
            if out.is_empty() {
                return Err(match last {
                    // A smart host's name that does not resolve is the
                    // admin's to fix; the queue retries, so the code is 4xx.
                    Some(e) => e.into_transient(),
                    None => DnsError::Transient("451 4.4.0 no smart host".into()),
                });
            }
        }
        Ok(out)
    }
}
