//! The configuration service: every change to the stored configuration goes
//! through here, atomically, and ends with a new published snapshot.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use tokio::sync::{Mutex, watch};
use uuid::Uuid;

use super::{ConfigObject, Snapshot, find, setting};
use crate::model::{Invalid, ServerContext, TransportSettings};
use crate::secrets::SecretBox;
use crate::store::{Store, Stored, Table, Tx};

/// A change prepared by the caller from the current snapshot.
pub struct Change<T> {
    pub spec: T,
    /// A new sealed secret or hash; None keeps the stored one.
    pub secret: Option<Vec<u8>>,
    /// Other objects of the same kind that change with this one, with the
    /// version they were read at (e.g. the previous default accepted domain).
    pub also: Vec<(Uuid, i64, T)>,
}

impl<T> Change<T> {
    pub fn of(spec: T) -> Self {
        Change {
            spec,
            secret: None,
            also: vec![],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{kind} '{key}' does not exist")]
    NotFound { kind: &'static str, key: String },
    #[error("{message}")]
    Conflict {
        field: Option<String>,
        message: String,
    },
    #[error("the {kind} has changed since it was read (now at version {current})")]
    PreconditionFailed { kind: &'static str, current: i64 },
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A merge patch valid on its own that breaks a rule joining its
    /// fields with ones it leaves as stored (RFC 5789 §2.2).
    #[error("{0}")]
    StoredConflict(Invalid),
    /// The whole configuration changed since the document's version was read.
    #[error("the configuration has changed since it was read (now at version {current})")]
    ConfigChanged { current: String },
    /// The fleet's shared store (PostgreSQL) cannot take the change now.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// One write of a whole-configuration change ([`ConfigService::replace`]).
#[derive(Debug)]
pub enum Write {
    Insert {
        table: Table,
        id: Uuid,
        name: String,
        spec: serde_json::Value,
        secret: Option<Vec<u8>>,
    },
    /// `secret` None keeps the stored one.
    Update {
        table: Table,
        id: Uuid,
        version: i64,
        name: String,
        spec: serde_json::Value,
        secret: Option<Vec<u8>>,
    },
    Delete {
        table: Table,
        id: Uuid,
        version: i64,
    },
    /// A singleton document of the `settings` table; version 0 if unwritten.
    Setting {
        kind: &'static str,
        spec: serde_json::Value,
        version: i64,
    },
    Transport {
        spec: serde_json::Value,
        version: i64,
    },
}

/// What a whole-configuration change made, or would make.
pub struct Replaced {
    pub before: Arc<Snapshot>,
    /// The configuration as it is (committed) or would be (a dry run).
    pub after: Arc<Snapshot>,
    pub committed: bool,
}

impl ServiceError {
    /// Reads a patched object's refusal against the patch that made it:
    /// a rule broken only together with the stored fields is a conflict
    /// with the object's state (409); anything else is the patch's own
    /// fault (422).
    pub fn against(patch: &serde_json::Value) -> impl Fn(Invalid) -> ServiceError + '_ {
        move |e| {
            if e.only_against_stored(patch) {
                ServiceError::StoredConflict(e)
            } else {
                ServiceError::Invalid(e)
            }
        }
    }

    /// A refusal that names only `field`, for a rule about the other
    /// objects rather than the body (a name already taken, the one
    /// default): a conflict with the current state (409), not a malformed
    /// object (422).
    pub fn conflict_on(field: &'static str) -> impl Fn(Invalid) -> ServiceError {
        move |e| match e.0.as_slice() {
            [only] if only.field == field => ServiceError::Conflict {
                field: Some(field.into()),
                message: only.message.clone(),
            },
            _ => e.into(),
        }
    }
}

/// Runs a whole configuration change (CPU-heavy validation such as 100,000
/// ranges checked against another connector, the write, the new snapshot's
/// parse) under `block_in_place`: it takes a worker thread for a moment and
/// the SMTP sessions and health checks queued on that worker move to the
/// others meanwhile. On a single-threaded runtime (unit tests) it simply runs.
async fn off_worker_async<F: std::future::Future>(f: F) -> F::Output {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| h.block_on(f))
        }
        _ => f.await,
    }
}

/// Something running that must follow the configuration, in two steps
/// around the commit: `prepare` may refuse the change (nothing is committed
/// then), `activate` applies what `prepare` readied.
pub trait Reconciler: Send + Sync {
    fn prepare(&self, old: &Snapshot, new: &Snapshot) -> Result<Box<dyn Any + Send>, Invalid>;
    /// As `prepare`, for a configuration another server of the fleet has
    /// already put in force: what cannot be done here (a binding taken) is
    /// logged and left out, never refused.
    fn prepare_anyway(&self, new: &Snapshot) -> Box<dyn Any + Send>;
    fn activate(&self, prepared: Box<dyn Any + Send>, new: &Snapshot);
}

pub struct ConfigService {
    store: Store,
    pub secrets: SecretBox,
    ctx_base: ServerContext,
    /// One writer at a time: validation against the snapshot and the write
    /// that follows must see the same configuration.
    writer: Mutex<()>,
    tx: watch::Sender<Arc<Snapshot>>,
    reconciler: OnceLock<Arc<dyn Reconciler>>,
    metrics: OnceLock<Arc<crate::observe::metrics::Metrics>>,
    /// The fleet's shared configuration (`--config-store postgres://…`).
    fleet: OnceLock<Arc<super::fleet::Fleet>>,
}

impl ConfigService {
    pub(super) async fn start(
        store: Store,
        secrets: SecretBox,
        ctx_base: ServerContext,
    ) -> anyhow::Result<Self> {
        let mut tx = store.begin().await?;
        let snap = load_snapshot(&mut tx, &ctx_base, 1).await?;
        tx.commit().await?;
        let (sender, _) = watch::channel(Arc::new(snap));
        Ok(ConfigService {
            store,
            secrets,
            ctx_base,
            writer: Mutex::new(()),
            tx: sender,
            reconciler: OnceLock::new(),
            metrics: OnceLock::new(),
            fleet: OnceLock::new(),
        })
    }

    /// Joins a fleet (once): from now on every change goes to PostgreSQL
    /// first.
    pub fn set_fleet(&self, f: Arc<super::fleet::Fleet>) {
        let _ = self.fleet.set(f);
    }

    pub fn fleet(&self) -> Option<&Arc<super::fleet::Fleet>> {
        self.fleet.get()
    }

    /// Writes what the fleet changed into this server's copy and puts it in
    /// force. `full`: `rows` are all the fleet's rows (joining). Rows read
    /// before a change this server has since made are stale: nothing is
    /// done (None), and the next round reads again.
    pub async fn apply_fleet(
        &self,
        rows: &[crate::store::fleet::FleetRow],
        full: bool,
        revision: i64,
    ) -> Result<Option<Arc<Snapshot>>, ServiceError> {
        let _guard = self.writer.lock().await;
        let Some(fleet) = self.fleet.get() else {
            return Ok(None);
        };
        if !full && fleet.revision() >= revision {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let previous = self.snapshot();
        let mut tx = self.store.begin().await?;
        crate::store::fleet::apply_rows(&mut tx, rows, full).await?;
        crate::store::fleet::set_local_revision(&mut tx, revision).await?;
        let snap = Arc::new(load_snapshot(&mut tx, &self.ctx_base, previous.generation + 1).await?);
        let prepared = self.reconciler.get().map(|r| (r, r.prepare_anyway(&snap)));
        let snap = self
            .commit_and_publish(tx, &previous, snap, prepared, started)
            .await?;
        // Under the writer lock still: the next change diffs against this.
        fleet.applied(rows, full, revision);
        Ok(Some(snap))
    }

    /// In a fleet, refuses a change made outside the configuration's own
    /// transactions (an API token) while PostgreSQL is unreachable, with the
    /// same 503 as any change, before anything is written.
    pub async fn fleet_gate(&self) -> Result<(), ServiceError> {
        match self.fleet.get() {
            Some(f) if !f.journal().ping().await => Err(ServiceError::Unavailable(
                "the fleet's shared configuration (PostgreSQL) is unreachable: changes are \
                 refused until it is back"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// In a fleet, sends what changed outside the configuration's own
    /// transactions (an API token) to the others. Should PostgreSQL fail
    /// between the gate and here, the change stays on this server and goes
    /// with the next one (it is logged).
    pub async fn push_fleet(&self) {
        let Some(fleet) = self.fleet.get() else {
            return;
        };
        let _guard = self.writer.lock().await;
        let done = async {
            let mut tx = self.store.begin().await?;
            fleet.push(&mut tx).await?;
            tx.commit().await.map_err(anyhow::Error::from)?;
            Ok::<(), ServiceError>(())
        };
        if let Err(e) = done.await {
            tracing::warn!(error = %e, "an API token change was not sent to the fleet yet; it goes with the next change");
        }
    }

    /// Pushes this server's shared rows as the fleet's first revision, or
    /// as what changed on it while it could not reach PostgreSQL… never: a
    /// change is refused then. Used when the fleet is empty.
    pub async fn seed_fleet(&self) -> Result<(), ServiceError> {
        let _guard = self.writer.lock().await;
        let Some(fleet) = self.fleet.get() else {
            return Ok(());
        };
        let mut tx = self.store.begin().await?;
        fleet.push(&mut tx).await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok(())
    }

    /// Registers the listener supervisor (once).
    pub fn set_reconciler(&self, r: Arc<dyn Reconciler>) {
        let _ = self.reconciler.set(r);
    }

    /// Where configuration reloads are counted (once).
    pub fn set_metrics(&self, m: Arc<crate::observe::metrics::Metrics>) {
        let _ = self.metrics.set(m);
    }

    /// The snapshot in force now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    /// A receiver that sees every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates an object. `prepare` gets the current snapshot and the new id.
    pub async fn create<T: ConfigObject>(
        &self,
        prepare: impl FnOnce(&Snapshot, Uuid) -> Result<Change<T>, ServiceError>,
    ) -> Result<Stored<T>, ServiceError> {
        off_worker_async(self.create_inner(prepare)).await
    }

    async fn create_inner<T: ConfigObject>(
        &self,
        prepare: impl FnOnce(&Snapshot, Uuid) -> Result<Change<T>, ServiceError>,
    ) -> Result<Stored<T>, ServiceError> {
        let _guard = self.writer.lock().await;
        let snap = self.snapshot();
        let id = Uuid::new_v4();
        let change = prepare(&snap, id)?;
        let name = change.spec.name();
        unique_name::<T>(&snap, &name, None)?;
        let mut tx = self.store.begin().await?;
        Store::insert(
            &mut tx,
            T::TABLE,
            id,
            &name,
            &change.spec,
            change.secret.as_deref(),
        )
        .await?;
        write_also(&mut tx, &change.also).await?;
        let snap = self.publish(tx, &snap).await?;
        Ok(T::all(&snap)
            .iter()
            .find(|o| o.id == id)
            .cloned()
            .expect("just inserted"))
    }

    /// Creates many objects of one kind in one transaction and one
    /// published change (bulk imports). `prepare` gets the current snapshot.
    pub async fn create_many<T: ConfigObject>(
        &self,
        prepare: impl FnOnce(&Snapshot) -> Result<Vec<T>, ServiceError>,
    ) -> Result<usize, ServiceError> {
        off_worker_async(async {
            let _guard = self.writer.lock().await;
            let snap = self.snapshot();
            let specs = prepare(&snap)?;
            let mut names: std::collections::HashSet<String> = T::all(&snap)
                .iter()
                .map(|o| o.spec.name().to_lowercase())
                .collect();
            for (i, s) in specs.iter().enumerate() {
                let name = s.name();
                if !names.insert(name.to_lowercase()) {
                    return Err(ServiceError::Conflict {
                        field: Some(format!("items[{i}]")),
                        message: format!("a {} named '{name}' already exists", T::KIND),
                    });
                }
            }
            let mut tx = self.store.begin().await?;
            for s in &specs {
                Store::insert(&mut tx, T::TABLE, Uuid::new_v4(), &s.name(), s, None).await?;
            }
            self.publish(tx, &snap).await?;
            Ok(specs.len())
        })
        .await
    }

    /// Changes an object found by id or name, if it is still at `if_match`.
    pub async fn update<T: ConfigObject>(
        &self,
        key: &str,
        if_match: Option<i64>,
        prepare: impl FnOnce(&Snapshot, &Stored<T>) -> Result<Change<T>, ServiceError>,
    ) -> Result<Stored<T>, ServiceError> {
        off_worker_async(self.update_inner(key, if_match, prepare)).await
    }

    async fn update_inner<T: ConfigObject>(
        &self,
        key: &str,
        if_match: Option<i64>,
        prepare: impl FnOnce(&Snapshot, &Stored<T>) -> Result<Change<T>, ServiceError>,
    ) -> Result<Stored<T>, ServiceError> {
        let _guard = self.writer.lock().await;
        let snap = self.snapshot();
        let current = find::<T>(&snap, key).ok_or_else(|| ServiceError::NotFound {
            kind: T::KIND,
            key: key.to_string(),
        })?;
        check_version::<T>(current.version, if_match)?;
        let change = prepare(&snap, current)?;
        let name = change.spec.name();
        unique_name::<T>(&snap, &name, Some(current.id))?;
        let mut tx = self.store.begin().await?;
        Store::update(
            &mut tx,
            T::TABLE,
            current.id,
            current.version,
            &name,
            &change.spec,
            change.secret.as_deref(),
        )
        .await?;
        write_also(&mut tx, &change.also).await?;
        let id = current.id;
        let snap = self.publish(tx, &snap).await?;
        Ok(T::all(&snap)
            .iter()
            .find(|o| o.id == id)
            .cloned()
            .expect("just updated"))
    }

    /// Deletes an object unless `check` finds something that depends on it.
    pub async fn delete<T: ConfigObject>(
        &self,
        key: &str,
        if_match: Option<i64>,
        check: impl FnOnce(&Snapshot, &Stored<T>) -> Result<(), ServiceError>,
    ) -> Result<(), ServiceError> {
        let _guard = self.writer.lock().await;
        let snap = self.snapshot();
        let current = find::<T>(&snap, key).ok_or_else(|| ServiceError::NotFound {
            kind: T::KIND,
            key: key.to_string(),
        })?;
        check_version::<T>(current.version, if_match)?;
        check(&snap, current)?;
        let mut tx = self.store.begin().await?;
        Store::delete(&mut tx, T::TABLE, current.id, current.version).await?;
        self.publish(tx, &snap).await?;
        Ok(())
    }

    pub async fn update_transport_settings(
        &self,
        if_match: Option<i64>,
        prepare: impl FnOnce(&Snapshot) -> Result<TransportSettings, ServiceError>,
    ) -> Result<Stored<TransportSettings>, ServiceError> {
        let _guard = self.writer.lock().await;
        let snap = self.snapshot();
        if let Some(v) = if_match
            && v != snap.transport.version
        {
            return Err(ServiceError::PreconditionFailed {
                kind: "transport settings",
                current: snap.transport.version,
            });
        }
        let spec = prepare(&snap)?;
        let mut tx = self.store.begin().await?;
        Store::put_transport_settings(&mut tx, &spec, Some(snap.transport.version)).await?;
        let snap = self.publish(tx, &snap).await?;
        Ok(snap.transport.clone())
    }

    /// Changes a singleton document of the `settings` table (`kind`), read
    /// from the snapshot by `get`, if it is still at `if_match`.
    pub async fn update_setting<T: serde::Serialize + Clone>(
        &self,
        kind: &'static str,
        get: impl Fn(&Snapshot) -> &Stored<T>,
        if_match: Option<i64>,
        prepare: impl FnOnce(&Snapshot, &T) -> Result<T, ServiceError>,
    ) -> Result<Stored<T>, ServiceError> {
        let _guard = self.writer.lock().await;
        let snap = self.snapshot();
        let current = get(&snap);
        if let Some(v) = if_match
            && v != current.version
        {
            return Err(ServiceError::PreconditionFailed {
                kind,
                current: current.version,
            });
        }
        let spec = prepare(&snap, &current.spec)?;
        let mut tx = self.store.begin().await?;
        Store::put_setting(&mut tx, kind, &spec, current.version).await?;
        let snap = self.publish(tx, &snap).await?;
        Ok(get(&snap).clone())
    }

    /// Replaces the whole configuration in one transaction: `prepare` gets
    /// the current snapshot and answers with the writes, `check` judges the
    /// configuration they make as a whole (references between objects),
    /// and the listeners' reconciler may refuse it. A dry run does all of
    /// that and rolls back. `if_match` is the configuration's version (the
    /// [`super::document::version`] it was read at).
    pub async fn replace(
        &self,
        if_match: Option<&str>,
        dry_run: bool,
        prepare: impl FnOnce(&Snapshot) -> Result<Vec<Write>, ServiceError>,
        check: impl FnOnce(&Snapshot, &Snapshot) -> Result<(), ServiceError>,
    ) -> Result<Replaced, ServiceError> {
        off_worker_async(async {
            let _guard = self.writer.lock().await;
            let before = self.snapshot();
            if let Some(v) = if_match {
                let current = super::document::version(&before);
                if v != current {
                    return Err(ServiceError::ConfigChanged { current });
                }
            }
            let writes = prepare(&before)?;
            let mut tx = self.store.begin().await?;
            for w in &writes {
                match w {
                    Write::Insert {
                        table,
                        id,
                        name,
                        spec,
                        secret,
                    } => Store::insert(&mut tx, *table, *id, name, spec, secret.as_deref()).await?,
                    Write::Update {
                        table,
                        id,
                        version,
                        name,
                        spec,
                        secret,
                    } => {
                        Store::update(
                            &mut tx,
                            *table,
                            *id,
                            *version,
                            name,
                            spec,
                            secret.as_deref(),
                        )
                        .await?
                    }
                    Write::Delete { table, id, version } => {
                        Store::delete(&mut tx, *table, *id, *version).await?
                    }
                    Write::Setting {
                        kind,
                        spec,
                        version,
                    } => {
                        Store::put_setting(&mut tx, kind, spec, *version).await?;
                    }
                    Write::Transport { spec, version } => {
                        Store::put_transport_settings(&mut tx, spec, Some(*version)).await?;
                    }
                }
            }
            if writes.is_empty() {
                // Nothing to write: the configuration stays as it is.
                return Ok(Replaced {
                    after: before.clone(),
                    before,
                    committed: !dry_run,
                });
            }
            let started = std::time::Instant::now();
            let (after, prepared) = self.stage(&mut tx, &before).await?;
            check(&before, &after)?;
            if dry_run {
                drop(tx);
                return Ok(Replaced {
                    before,
                    after,
                    committed: false,
                });
            }
            self.finish(tx, &before, after.clone(), prepared, started)
                .await?;
            Ok(Replaced {
                before,
                after,
                committed: true,
            })
        })
        .await
    }

    /// Re-reads the configuration inside the transaction, commits, and
    /// publishes the result.
    async fn publish(
        &self,
        mut tx: Tx,
        previous: &Snapshot,
    ) -> Result<Arc<Snapshot>, ServiceError> {
        let started = std::time::Instant::now();
        let (snap, prepared) = self.stage(&mut tx, previous).await?;
        self.finish(tx, previous, snap, prepared, started).await
    }

    /// The configuration the transaction makes, and what the listeners
    /// ready for it; a refusal leaves the transaction to roll back.
    async fn stage(
        &self,
        tx: &mut Tx,
        previous: &Snapshot,
    ) -> Result<(Arc<Snapshot>, Option<Prepared<'_>>), ServiceError> {
        let snap = Arc::new(load_snapshot(tx, &self.ctx_base, previous.generation + 1).await?);
        let prepared = match self.reconciler.get() {
            Some(r) => Some((r, r.prepare(previous, &snap)?)),
            None => None,
        };
        Ok((snap, prepared))
    }

    /// Commits a staged change and puts it in force. In a fleet the
    /// change goes to PostgreSQL first: refused there, it is not made here
    /// either.
    async fn finish(
        &self,
        mut tx: Tx,
        previous: &Snapshot,
        snap: Arc<Snapshot>,
        prepared: Option<Prepared<'_>>,
        started: std::time::Instant,
    ) -> Result<Arc<Snapshot>, ServiceError> {
        if let Some(fleet) = self.fleet.get() {
            fleet.push(&mut tx).await?;
        }
        self.commit_and_publish(tx, previous, snap, prepared, started)
            .await
    }

    async fn commit_and_publish(
        &self,
        tx: Tx,
        previous: &Snapshot,
        snap: Arc<Snapshot>,
        prepared: Option<Prepared<'_>>,
        started: std::time::Instant,
    ) -> Result<Arc<Snapshot>, ServiceError> {
        tx.commit().await.map_err(anyhow::Error::from)?;
        super::audit::note_snapshots(previous, &snap);
        self.tx.send_replace(snap.clone());
        if let Some((r, p)) = prepared {
            r.activate(p, &snap);
        }
        if let Some(m) = self.metrics.get() {
            m.reload(started.elapsed());
        }
        tracing::debug!(
            generation = snap.generation,
            took_us = started.elapsed().as_micros() as u64,
            "configuration published"
        );
        Ok(snap)
    }
}

/// The listeners' reconciler and what it readied for a staged change.
type Prepared<'a> = (&'a Arc<dyn Reconciler>, Box<dyn Any + Send>);

fn check_version<T: ConfigObject>(current: i64, if_match: Option<i64>) -> Result<(), ServiceError> {
    match if_match {
        Some(v) if v != current => Err(ServiceError::PreconditionFailed {
            kind: T::KIND,
            current,
        }),
        _ => Ok(()),
    }
}

fn unique_name<T: ConfigObject>(
    snap: &Snapshot,
    name: &str,
    except: Option<Uuid>,
) -> Result<(), ServiceError> {
    if T::all(snap)
        .iter()
        .any(|o| Some(o.id) != except && o.spec.name().eq_ignore_ascii_case(name))
    {
        return Err(ServiceError::Conflict {
            field: Some("name".into()),
            message: format!("a {} named '{name}' already exists", T::KIND),
        });
    }
    Ok(())
}

async fn write_also<T: ConfigObject>(tx: &mut Tx, also: &[(Uuid, i64, T)]) -> anyhow::Result<()> {
    for (id, version, spec) in also {
        Store::update(tx, T::TABLE, *id, *version, &spec.name(), spec, None).await?;
    }
    Ok(())
}

pub(super) async fn load_snapshot(
    tx: &mut Tx,
    base: &ServerContext,
    generation: u64,
) -> anyhow::Result<Snapshot> {
    let transport: Stored<TransportSettings> = Store::transport_settings(tx).await?;
    let certificates: Vec<Stored<crate::model::CertificateRecord>> =
        Store::list(tx, Table::Certificates).await?;
    let mut certificate_info = HashMap::new();
    for c in &certificates {
        let chain =
            crate::tls::certs::parse_chain(&c.spec.chain_pem).map_err(anyhow::Error::msg)?;
        certificate_info.insert(c.id, crate::tls::certs::inspect(&chain));
    }
    let role = base.role;
    let mut ip_list_providers: Vec<Stored<crate::model::anti_spam::IpListProvider>> =
        Store::list(tx, Table::IpListProviders).await?;
    ip_list_providers.sort_by_key(|p| (p.spec.list.as_str(), p.spec.priority));
    let defaults = super::AntiSpam::defaults(role);
    let transport_rules = Store::setting(tx, setting::TRANSPORT_RULES)
        .await?
        .unwrap_or(defaults.transport_rules.clone());
    let anti_spam = super::AntiSpam {
        agents: Store::setting::<crate::model::anti_spam::TransportAgents>(
            tx,
            setting::TRANSPORT_AGENTS,
        )
        .await?
        .map(|s| Stored {
            spec: s.spec.completed(role),
            ..s
        })
        .unwrap_or(defaults.agents),
        ip_block_list_config: Store::setting(tx, setting::IP_BLOCK_LIST_CONFIG)
            .await?
            .unwrap_or(defaults.ip_block_list_config),
        ip_allow_list_config: Store::setting(tx, setting::IP_ALLOW_LIST_CONFIG)
            .await?
            .unwrap_or(defaults.ip_allow_list_config),
        sender_filter_config: Store::setting(tx, setting::SENDER_FILTER_CONFIG)
            .await?
            .unwrap_or(defaults.sender_filter_config),
        recipient_filter_config: Store::setting(tx, setting::RECIPIENT_FILTER_CONFIG)
            .await?
            .unwrap_or(defaults.recipient_filter_config),
        attachment_filter_config: Store::setting(tx, setting::ATTACHMENT_FILTER_CONFIG)
            .await?
            .unwrap_or(defaults.attachment_filter_config),
        content_filter_config: Store::setting(tx, setting::CONTENT_FILTER_CONFIG)
            .await?
            .unwrap_or(defaults.content_filter_config),
        sender_id_config: Store::setting(tx, setting::SENDER_ID_CONFIG)
            .await?
            .unwrap_or(defaults.sender_id_config),
        address_rewrite_entries: Store::setting(tx, setting::ADDRESS_REWRITE_ENTRIES)
            .await?
            .unwrap_or(defaults.address_rewrite_entries),
        compiled_rules: crate::model::edge_rule::Compiled::new(&transport_rules.spec),
        transport_rules,
        ip_list_entries: Store::list(tx, Table::IpListEntries).await?,
        ip_list_providers,
    };
    Ok(Snapshot {
        anti_spam,
        generation,
        ctx: ServerContext {
            fqdn: transport.spec.server_fqdn.clone(),
            ..base.clone()
        },
        receive_connectors: Store::list(tx, Table::ReceiveConnectors).await?,
        send_connectors: Store::list(tx, Table::SendConnectors).await?,
        accepted_domains: Store::list(tx, Table::AcceptedDomains).await?,
        credentials: Store::list(tx, Table::Credentials).await?,
        certificates,
        certificate_info,
        transport,
        dkim_keys: {
            let mut keys: Vec<Stored<crate::model::dkim::DkimSigningKey>> =
                Store::list(tx, Table::DkimKeys).await?;
            keys.sort_by(|a, b| {
                (a.spec.domain.as_str(), &a.spec.selector)
                    .cmp(&(b.spec.domain.as_str(), &b.spec.selector))
            });
            keys
        },
        webhooks: Store::list(tx, Table::Webhooks).await?,
        acme_certificates: Store::list(tx, Table::AcmeCertificates).await?,
        drain: Store::setting(tx, setting::SERVER_DRAIN)
            .await?
            .unwrap_or_else(|| Stored::unwritten(Default::default())),
    })
}
