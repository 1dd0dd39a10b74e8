//! Recipient validation against an LDAP directory (Active Directory or
//! OpenLDAP, through ldap3): a subtree search for the address, the answer
//! cached for the directory's positive or negative TTL. A directory that
//! cannot be reached or answers with an error is `Unavailable` (the session
//! answers `450 4.1.1`).

use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, ldap_escape};

use super::cache::TtlCache;
use super::callout::Verified;
use crate::config::Snapshot;
use crate::model::{Address, CredentialKind};
use crate::secrets::SecretBox;

/// Where and how to look, from the accepted domain's directory.
pub struct LdapQuery<'a> {
    pub url: &'a str,
    pub base_dn: &'a str,
    pub filter: &'a str,
    pub bind_credential: Option<&'a str>,
    pub start_tls: bool,
    pub ttl: (Duration, Duration),
}

#[derive(Default)]
pub struct Ldap {
    /// Known (true) or unknown, per directory and address.
    cache: TtlCache<bool>,
}

impl Ldap {
    /// Whether the directory knows `address`; `asked` tells whether this
    /// call searched (false: the answer came from the cache).
    pub async fn verify(
        &self,
        snap: &Snapshot,
        secrets: &SecretBox,
        address: &Address,
        q: &LdapQuery<'_>,
    ) -> (Verified, bool) {
        let key = format!(
            "{}|{}|{}",
            q.url,
            q.base_dn,
            address.as_str().to_ascii_lowercase()
        );
        if let Some(known) = self.cache.get(&key) {
            let v = if known {
                Verified::Known
            } else {
                Verified::Unknown("cached".into())
            };
            return (v, false);
        }
        let v =
            match tokio::time::timeout(Duration::from_secs(10), search(snap, secrets, address, q))
                .await
            {
                Ok(Ok(true)) => Verified::Known,
                Ok(Ok(false)) => Verified::Unknown("not in the directory".into()),
                Ok(Err(e)) => Verified::Unavailable(format!("{e:#}")),
                Err(_) => Verified::Unavailable("the directory did not answer in 10 s".into()),
            };
        let keep = match &v {
            Verified::Known => Some((true, q.ttl.0)),
            Verified::Unknown(_) => Some((false, q.ttl.1)),
            Verified::Unavailable(_) => None,
        };
        if let Some((known, for_)) = keep {
            self.cache.put(key, known, for_);
        }
        (v, true)
    }
}

async fn search(
    snap: &Snapshot,
    secrets: &SecretBox,
    address: &Address,
    q: &LdapQuery<'_>,
) -> anyhow::Result<bool> {
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(crate::tls::roots::trust_roots(snap))
        .with_no_client_auth();
    let settings = LdapConnSettings::new()
        .set_conn_timeout(Duration::from_secs(5))
        .set_starttls(q.start_tls)
        .set_config(Arc::new(tls));
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, q.url).await?;
    ldap3::drive!(conn);
    if let Some(name) = q.bind_credential {
        let cred = snap
            .credentials
            .iter()
            .find(|c| {
                c.spec.kind == CredentialKind::SmartHost && c.spec.name.eq_ignore_ascii_case(name)
            })
            .ok_or_else(|| anyhow::anyhow!("the bind credential {name} is missing"))?;
        let password = secrets.open(
            &cred.id.to_string(),
            cred.secret.as_deref().unwrap_or_default(),
        )?;
        ldap.simple_bind(&cred.spec.user_name, &String::from_utf8_lossy(&password))
            .await?
            .success()?;
    }
    let filter = q.filter.replace("%s", &ldap_escape(address.as_str()));
    let (entries, _) = ldap
        .search(q.base_dn, Scope::Subtree, &filter, vec!["1.1"])
        .await?
        .success()?;
    let _ = ldap.unbind().await;
    Ok(!entries.is_empty())
}
