//! ACME issuing and renewal (RFC 8555, with RFC 8737's TLS-ALPN-01), on
//! the `instant-acme` crate. One task keeps every enabled ACME certificate
//! (`model::acme`) issued: when none is stored, when its names changed,
//! when renewal is due, or when an admin forces it. An order's challenges
//! are answered by a responder bound for that order only (http-01 on port
//! 80, tls-alpn-01 on 443, or the object's `challengeBinding`), as certbot's
//! standalone mode does, so nothing listens on those ports otherwise.
//!
//! The issued chain and its new key are stored as an ordinary certificate
//! of the store (marked with the ACME certificate's name) through the
//! configuration service: the snapshot that publishes it is what STARTTLS
//! and the API's HTTPS choose from, so the swap needs no restart. The
//! certificate it replaces is deleted once the new one is stored.
//!
//! The account's credentials are sealed into the ACME certificate's row,
//! registered at its first order (creating the object agrees to the CA's
//! terms of service). The directory's TLS is validated against the system's
//! roots and Ferry's trust anchors, so an internal CA's (or Pebble's)
//! directory is trusted by adding its root as a trust anchor.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::Notify;
use utoipa::ToSchema;
use uuid::Uuid;

use super::certs::{self, CertificateInfo};
use crate::config::{Change, ConfigService, ServiceError, Snapshot};
use crate::model::acme::{AcmeCertificate, AcmeChallenge};
use crate::model::{Binding, CertificateKind, CertificateRecord};
use crate::shutdown::Shutdown;
use crate::store::Stored;

/// Where an ACME certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum AcmeStatus {
    /// No certificate yet; the first order is due or running.
    Pending,
    /// A certificate covering every name is stored and not yet due.
    Valid,
    /// An order is running (a renewal, or the first issue).
    Ordering,
    /// The last order failed: see `lastError`; it is retried with backoff.
    Failed,
    /// `enabled` is false: nothing is ordered or renewed.
    Disabled,
}

/// The state of an ACME certificate, next to its configuration.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcmeState {
    pub status: AcmeStatus,
    /// The SHA-256 thumbprint of the certificate it keeps, in
    /// `/api/v1/certificates`.
    pub certificate: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// When it will be renewed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub renew_at: Option<OffsetDateTime>,
    /// Whether an account with the CA is registered (its key sealed).
    pub account_registered: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_issued: Option<OffsetDateTime>,
    /// Why the last order failed, as the CA or the network said it.
    pub last_error: Option<String>,
    /// Orders failed in a row.
    pub failures: u32,
    /// When a failed order is tried again.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt: Option<OffsetDateTime>,
}

/// What the manager remembers of each ACME certificate between rounds
/// (not stored: after a restart the stored certificate tells the rest).
#[derive(Debug, Clone, Default)]
struct Progress {
    ordering: bool,
    forced: bool,
    last_attempt: Option<OffsetDateTime>,
    last_issued: Option<OffsetDateTime>,
    last_error: Option<String>,
    failures: u32,
    next_attempt: Option<OffsetDateTime>,
}

/// The first retry after a failed order; doubled per failure up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(300);
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// How long the CA may take to validate the challenges.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the CA may take to sign once the order is finalized.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Acme {
    config: Arc<ConfigService>,
    progress: Mutex<HashMap<Uuid, Progress>>,
    wake: Notify,
}

impl Acme {
    pub fn new(config: Arc<ConfigService>) -> Arc<Acme> {
        Arc::new(Acme {
            config,
            progress: Mutex::default(),
            wake: Notify::new(),
        })
    }

    /// Orders a new certificate now, whether or not renewal is due.
    pub fn renew(&self, id: Uuid) {
        self.progress
            .lock()
            .expect("not poisoned")
            .entry(id)
            .or_default()
            .forced = true;
        self.wake.notify_one();
    }

    pub fn state(&self, snap: &Snapshot, a: &Stored<AcmeCertificate>) -> AcmeState {
        let p = self
            .progress
            .lock()
            .expect("not poisoned")
            .get(&a.id)
            .cloned()
            .unwrap_or_default();
        let current = current(snap, a);
        let now = OffsetDateTime::now_utc();
        let status = if !a.spec.enabled {
            AcmeStatus::Disabled
        } else if p.ordering || p.forced {
            AcmeStatus::Ordering
        } else if p.last_error.is_some() {
            AcmeStatus::Failed
        } else {
            match current {
                Some((_, info)) if covers_all(info, &a.spec) && info.not_after > now => {
                    AcmeStatus::Valid
                }
                _ => AcmeStatus::Pending,
            }
        };
        AcmeState {
            status,
            certificate: current.map(|(_, i)| i.sha256_fingerprint.clone()),
            not_after: current.map(|(_, i)| i.not_after),
            renew_at: current.map(|(_, i)| renew_at(i, a.spec.renew_before_days)),
            account_registered: a.secret.is_some(),
            last_attempt: p.last_attempt,
            last_issued: p.last_issued,
            last_error: p.last_error,
            failures: p.failures,
            next_attempt: p.next_attempt,
        }
    }

    /// Keeps every enabled ACME certificate issued until Ferry stops.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut changes = self.config.subscribe();
        loop {
            let snap = self.config.snapshot();
            self.forget_deleted(&snap);
            let mut next_check = OffsetDateTime::now_utc() + Duration::from_secs(3600);
            for a in snap.acme_certificates.iter().filter(|a| a.spec.enabled) {
                match self.due(&snap, a) {
                    Ok(()) => {
                        tokio::select! {
                            _ = shutdown.recv() => return,
                            _ = self.order(a) => {}
                        }
                    }
                    Err(at) => next_check = next_check.min(at),
                }
            }
            // Orders change the snapshot: look again at once, then sleep
            // until something is due, changes, or is forced.
            if self.config.snapshot().generation != snap.generation {
                continue;
            }
            let wait = (next_check - OffsetDateTime::now_utc())
                .clamp(time::Duration::seconds(1), time::Duration::hours(1));
            tokio::select! {
                _ = shutdown.recv() => return,
                _ = self.wake.notified() => {}
                _ = changes.changed() => {}
                _ = tokio::time::sleep(wait.unsigned_abs()) => {}
            }
        }
    }

    fn forget_deleted(&self, snap: &Snapshot) {
        self.progress
            .lock()
            .expect("not poisoned")
            .retain(|id, _| snap.acme_certificates.iter().any(|a| a.id == *id));
    }

    /// Ok when an order is due now; else when to look again.
    fn due(&self, snap: &Snapshot, a: &Stored<AcmeCertificate>) -> Result<(), OffsetDateTime> {
        let now = OffsetDateTime::now_utc();
        let p = self
            .progress
            .lock()
            .expect("not poisoned")
            .get(&a.id)
            .cloned()
            .unwrap_or_default();
        if p.forced {
            return Ok(());
        }
        let wanted = match current(snap, a) {
            Some((_, info)) if covers_all(info, &a.spec) => {
                renew_at(info, a.spec.renew_before_days)
            }
            _ => now,
        };
        let at = match p.next_attempt {
            Some(retry) if p.last_error.is_some() => retry.max(wanted),
            _ => wanted,
        };
        if at <= now { Ok(()) } else { Err(at) }
    }

    fn with_progress(&self, id: Uuid, f: impl FnOnce(&mut Progress)) {
        f(self
            .progress
            .lock()
            .expect("not poisoned")
            .entry(id)
            .or_default())
    }

    /// Runs one order and records how it went.
    async fn order(&self, a: &Stored<AcmeCertificate>) {
        let started = OffsetDateTime::now_utc();
        self.with_progress(a.id, |p| {
            p.ordering = true;
            p.forced = false;
            p.last_attempt = Some(started);
        });
        tracing::info!(acme = %a.spec.name, names = ?a.spec.subject_names, "ordering a certificate");
        let result = self.issue(a).await;
        self.with_progress(a.id, |p| {
            p.ordering = false;
            match &result {
                Ok(thumbprint) => {
                    tracing::info!(acme = %a.spec.name, %thumbprint, "certificate issued and in use");
                    p.last_issued = Some(OffsetDateTime::now_utc());
                    p.last_error = None;
                    p.failures = 0;
                    p.next_attempt = None;
                }
                Err(e) => {
                    tracing::warn!(acme = %a.spec.name, error = %e, "ordering a certificate failed");
                    p.failures += 1;
                    let backoff = FIRST_BACKOFF
                        .saturating_mul(1 << (p.failures - 1).min(10))
                        .min(MAX_BACKOFF);
                    p.last_error = Some(e.clone());
                    p.next_attempt = Some(OffsetDateTime::now_utc() + backoff);
                }
            }
        });
    }

    /// Orders, validates, finalizes and stores a certificate; its
    /// thumbprint, or why not.
    async fn issue(&self, a: &Stored<AcmeCertificate>) -> Result<String, String> {
        let snap = self.config.snapshot();
        let spec = &a.spec;
        let account = self.account(&snap, a).await?;
        let identifiers: Vec<Identifier> = spec
            .subject_names
            .iter()
            .map(|n| Identifier::Dns(n.as_str().to_string()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| format!("the CA refused the order: {e}"))?;
        let responder = Responder::start(spec.challenge, spec.binding()).await?;
        let wanted = match spec.challenge {
            AcmeChallenge::Http01 => ChallengeType::Http01,
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| format!("reading an authorization: {e}"))?;
            let name = authz.identifier().to_string();
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(format!("the authorization for {name} is {other:?}")),
            }
            let mut challenge = authz
                .challenge(wanted.clone())
                .ok_or_else(|| format!("the CA offers no {wanted:?} challenge for {name}"))?;
            responder.answer(&name, &challenge.token, &challenge.key_authorization())?;
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("the CA refused the {wanted:?} challenge for {name}: {e}"))?;
        }
        let status = order
            .poll_ready(&RetryPolicy::new().timeout(VALIDATION_TIMEOUT))
            .await
            .map_err(|e| format!("waiting for the CA to validate: {e}"))?;
        if status != OrderStatus::Ready {
            let mut why = vec![];
            let mut authorizations = order.authorizations();
            while let Some(Ok(authz)) = authorizations.next().await {
                for c in &authz.challenges {
                    if let Some(e) = &c.error {
                        why.push(format!("{}: {e}", authz.identifier()));
                    }
                }
            }
            return Err(format!(
                "the CA did not validate the order ({status:?}){}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {}", why.join("; "))
                }
            ));
        }
        drop(responder);
        let names: Vec<String> = spec
            .subject_names
            .iter()
            .map(|n| n.as_str().to_string())
            .collect();
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = rcgen::CertificateParams::new(names).map_err(|e| e.to_string())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, spec.subject_names[0].as_str());
        let csr = params
            .serialize_request(&key)
            .map_err(|e| format!("making the request: {e}"))?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(|e| format!("the CA refused to finalize the order: {e}"))?;
        let chain = order
            .poll_certificate(&RetryPolicy::new().timeout(ISSUE_TIMEOUT))
            .await
            .map_err(|e| format!("waiting for the CA to issue: {e}"))?;
        self.store(a, &chain, &key.serialize_pem()).await
    }

    /// Stores a new chain with its key, then deletes the certificates it
    /// replaces.
    async fn store(
        &self,
        a: &Stored<AcmeCertificate>,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<String, String> {
        let chain =
            certs::parse_chain(chain_pem).map_err(|e| format!("the CA's certificate: {e}"))?;
        let key = certs::parse_key(key_pem)?;
        certs::check_key_matches(&chain, &key).map_err(|e| format!("the CA's certificate: {e}"))?;
        let info = certs::inspect(&chain);
        let record = CertificateRecord {
            kind: CertificateKind::Certificate,
            friendly_name: Some(format!("ACME: {}", a.spec.name)),
            chain_pem: certs::to_pem(&chain),
            acme: Some(a.spec.name.clone()),
        };
        let secrets = self.config.secrets.clone();
        let stored = self
            .config
            .create::<CertificateRecord>(|_, id| {
                Ok(Change {
                    spec: record,
                    secret: Some(secrets.seal(&id.to_string(), key_pem.as_bytes())),
                    also: vec![],
                })
            })
            .await
            .map_err(|e| format!("storing the certificate: {e}"))?;
        let snap = self.config.snapshot();
        let replaced: Vec<Uuid> = snap
            .certificates
            .iter()
            .filter(|c| c.id != stored.id && is_issued_by(c, &a.spec.name))
            .filter(|c| {
                // A connector pinned to an older certificate's name keeps
                // it until the admin pins the new one.
                snap.certificate_info.get(&c.id).is_none_or(|old| {
                    old.tls_certificate_name == info.tls_certificate_name
                        || !pinned(&snap, &old.tls_certificate_name)
                })
            })
            .map(|c| c.id)
            .collect();
        for id in replaced {
            match self
                .config
                .delete::<CertificateRecord>(&id.to_string(), None, |_, _| Ok(()))
                .await
            {
                Ok(()) | Err(ServiceError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(acme = %a.spec.name, %id, error = %e, "removing a replaced certificate failed")
                }
            }
        }
        Ok(info.sha256_fingerprint)
    }

    /// The CA account: the sealed one if it was registered with this
    /// directory, else a new registration, sealed into the object.
    async fn account(
        &self,
        snap: &Snapshot,
        a: &Stored<AcmeCertificate>,
    ) -> Result<Account, String> {
        let http = || -> Result<Box<dyn HttpClient>, String> { Ok(Box::new(Http(client(snap)?))) };
        let context = a.id.to_string();
        if let Some(sealed) = &a.secret
            && let Ok(plain) = self.config.secrets.open(&context, sealed)
            && let Ok(saved) = serde_json::from_slice::<SavedAccount>(&plain)
            && saved.directory_url == a.spec.directory_url
        {
            return Account::builder_with_http(http()?)
                .from_credentials(saved.credentials)
                .await
                .map_err(|e| format!("the CA's directory: {e}"));
        }
        let contact: Vec<String> = a
            .spec
            .contact
            .iter()
            .map(|c| format!("mailto:{c}"))
            .collect();
        let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = Account::builder_with_http(http()?)
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                a.spec.directory_url.clone(),
                None,
            )
            .await
            .map_err(|e| format!("registering an account with the CA: {e}"))?;
        let saved = serde_json::to_vec(&SavedAccount {
            directory_url: a.spec.directory_url.clone(),
            credentials,
        })
        .map_err(|e| e.to_string())?;
        let secrets = self.config.secrets.clone();
        self.config
            .update::<AcmeCertificate>(&context, None, |_, current| {
                Ok(Change {
                    spec: current.spec.clone(),
                    secret: Some(secrets.seal(&context, &saved)),
                    also: vec![],
                })
            })
            .await
            .map_err(|e| format!("storing the account: {e}"))?;
        Ok(account)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SavedAccount {
    directory_url: String,
    credentials: AccountCredentials,
}

fn is_issued_by(c: &Stored<CertificateRecord>, name: &str) -> bool {
    c.spec
        .acme
        .as_deref()
        .is_some_and(|n| n.eq_ignore_ascii_case(name))
}

fn pinned(snap: &Snapshot, tls_name: &str) -> bool {
    snap.receive_connectors
        .iter()
        .any(|c| c.spec.tls_certificate_name.as_deref() == Some(tls_name))
        || snap
            .send_connectors
            .iter()
            .any(|c| c.spec.tls_certificate_name.as_deref() == Some(tls_name))
}

/// The newest certificate this ACME certificate issued, with its key.
fn current<'a>(
    snap: &'a Snapshot,
    a: &Stored<AcmeCertificate>,
) -> Option<(&'a Stored<CertificateRecord>, &'a CertificateInfo)> {
    snap.certificates
        .iter()
        .filter(|c| c.secret.is_some() && is_issued_by(c, &a.spec.name))
        .filter_map(|c| snap.certificate_info.get(&c.id).map(|i| (c, i)))
        .max_by_key(|(_, i)| (i.not_after, i.not_before))
}

fn covers_all(info: &CertificateInfo, a: &AcmeCertificate) -> bool {
    a.subject_names.iter().all(|n| {
        info.subject_alternative_names
            .iter()
            .any(|s| s.eq_ignore_ascii_case(n.as_str()))
    })
}

/// When fewer than `days` remain; for a certificate that lives less than
/// twice that, at half its lifetime (else it would always be due).
fn renew_at(info: &CertificateInfo, days: u32) -> OffsetDateTime {
    let lifetime = info.not_after - info.not_before;
    let window = time::Duration::days(days.into()).min(lifetime / 2);
    info.not_after - window
}

/// reqwest with the system's roots and Ferry's trust anchors.
fn client(snap: &Snapshot) -> Result<reqwest::Client, String> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .map_err(|e| e.to_string())?
    .with_root_certificates(super::roots::trust_roots(snap))
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("Ferry/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// instant-acme's HTTP through reqwest.
struct Http(reqwest::Client);

impl HttpClient for Http {
    fn request(
        &self,
        req: http::Request<BodyWrapper<bytes::Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            use http_body_util::BodyExt;
            // reqwest's own message names only the URL: the causes say why.
            let other = |e: &dyn std::error::Error| {
                let mut text = e.to_string();
                let mut cause = e.source();
                while let Some(c) = cause {
                    text = format!("{text}: {c}");
                    cause = c.source();
                }
                instant_acme::Error::Other(text.into())
            };
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map_err(|e| other(&e))?.to_bytes();
            let url = reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| other(&e))?;
            let rsp = client
                .request(parts.method, url)
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| other(&e))?;
            let mut head = http::Response::builder().status(rsp.status());
            for (k, v) in rsp.headers() {
                head = head.header(k, v);
            }
            let bytes = rsp.bytes().await.map_err(|e| other(&e))?;
            let (parts, ()) = head
                .body(())
                .map_err(instant_acme::Error::Http)?
                .into_parts();
            Ok(BytesResponse {
                parts,
                body: Box::new(bytes),
            })
        })
    }
}

/// The challenge answers of one order, served while it lives.
struct Responder {
    http: Arc<Mutex<HashMap<String, String>>>,
    alpn: Arc<AlpnCertificates>,
    challenge: AcmeChallenge,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        // Ends the accept loop, which closes the listener.
        self.task.abort();
    }
}

/// The RFC 8737 validation certificates, by name.
#[derive(Debug, Default)]
struct AlpnCertificates(Mutex<HashMap<String, Arc<CertifiedKey>>>);

impl ResolvesServerCert for AlpnCertificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut p| p.any(|p| p == ACME_TLS_ALPN));
        let name = hello.server_name()?.to_ascii_lowercase();
        acme.then(|| self.0.lock().expect("not poisoned").get(&name).cloned())
            .flatten()
    }
}

const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
const HTTP_PREFIX: &str = "/.well-known/acme-challenge/";

impl Responder {
    async fn start(challenge: AcmeChallenge, binding: Binding) -> Result<Responder, String> {
        let listener = tokio::net::TcpListener::bind(binding.socket_addr())
            .await
            .map_err(|e| {
                format!("cannot listen on {binding} to answer the {challenge:?} challenge: {e}")
            })?;
        let http: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let alpn: Arc<AlpnCertificates> = Arc::default();
        let task = match challenge {
            AcmeChallenge::Http01 => {
                let answers = http.clone();
                let app = axum::Router::new().route(
                    "/.well-known/acme-challenge/{token}",
                    axum::routing::get(
                        move |axum::extract::Path(token): axum::extract::Path<String>| async move {
                            let ka = answers.lock().expect("not poisoned").get(&token).cloned();
                            match ka {
                                Some(ka) => (
                                    axum::http::StatusCode::OK,
                                    [(
                                        axum::http::header::CONTENT_TYPE,
                                        "application/octet-stream",
                                    )],
                                    ka,
                                ),
                                None => (
                                    axum::http::StatusCode::NOT_FOUND,
                                    [(axum::http::header::CONTENT_TYPE, "text/plain")],
                                    "no such challenge".to_string(),
                                ),
                            }
                        },
                    ),
                );
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                })
            }
            AcmeChallenge::TlsAlpn01 => {
                let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| e.to_string())?
                .with_no_client_auth()
                .with_cert_resolver(alpn.clone());
                config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
                tokio::spawn(async move {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        };
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            // The handshake is the whole answer.
                            if let Ok(Ok(mut tls)) = tokio::time::timeout(
                                Duration::from_secs(10),
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                use tokio::io::AsyncWriteExt;
                                let _ = tls.shutdown().await;
                            }
                        });
                    }
                })
            }
        };
        Ok(Responder {
            http,
            alpn,
            challenge,
            task,
        })
    }

    /// Answers one authorization's challenge.
    fn answer(
        &self,
        name: &str,
        token: &str,
        key_authorization: &instant_acme::KeyAuthorization,
    ) -> Result<(), String> {
        match self.challenge {
            AcmeChallenge::Http01 => {
                debug_assert!(!token.contains('/'), "{HTTP_PREFIX}");
                self.http
                    .lock()
                    .expect("not poisoned")
                    .insert(token.to_string(), key_authorization.as_str().to_string());
            }
            AcmeChallenge::TlsAlpn01 => {
                let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
                let mut params = rcgen::CertificateParams::new(vec![name.to_string()])
                    .map_err(|e| e.to_string())?;
                params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(
                    key_authorization.digest().as_ref(),
                )];
                let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
                let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
                let signer = rustls::crypto::ring::sign::any_supported_type(&der)
                    .map_err(|e| e.to_string())?;
                self.alpn.0.lock().expect("not poisoned").insert(
                    name.to_ascii_lowercase(),
                    Arc::new(CertifiedKey::new(vec![cert.der().clone()], signer)),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(days: i64) -> CertificateInfo {
        let not_before = OffsetDateTime::UNIX_EPOCH;
        CertificateInfo {
            subject: String::new(),
            issuer: String::new(),
            subject_alternative_names: vec!["mail.contoso.test".into()],
            not_before,
            not_after: not_before + time::Duration::days(days),
            sha256_fingerprint: String::new(),
            serial_number: String::new(),
            self_signed: false,
            tls_certificate_name: String::new(),
            chain_length: 1,
        }
    }

    #[test]
    fn renewal_is_due_before_expiry_and_never_at_once() {
        // A 90-day certificate: 30 days before it ends.
        assert_eq!(
            renew_at(&info(90), 30),
            OffsetDateTime::UNIX_EPOCH + time::Duration::days(60)
        );
        // A 6-day certificate renews at half its life, not immediately.
        assert_eq!(
            renew_at(&info(6), 30),
            OffsetDateTime::UNIX_EPOCH + time::Duration::days(3)
        );
    }
}
