//! Snapshots for unit tests of the pure rules (receive-connector selection,
//! routing, the retry schedule): built from the same JSON bodies the API
//! takes, through the models' own parsers, with no database and no peer.

use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Snapshot;
use crate::model::{
    AcceptedDomain, ReceiveConnector, Role, SendConnector, ServerContext, TransportSettings,
};
use crate::store::Stored;

fn stored<T>(spec: T) -> Stored<T> {
    Stored {
        id: Uuid::new_v4(),
        version: 1,
        created_at: OffsetDateTime::UNIX_EPOCH,
        updated_at: OffsetDateTime::UNIX_EPOCH,
        spec,
        secret: None,
    }
}

/// A snapshot of server `NAME01` (`name01.contoso.test`) in `role`, with
/// nothing configured until the `with_*` calls add it.
pub struct SnapshotBuilder {
    snap: Snapshot,
}

impl SnapshotBuilder {
    pub fn new(role: Role) -> Self {
        let (name, fqdn) = match role {
            Role::Edge => ("EDGE01", "edge01.contoso.test"),
            Role::Hub => ("HUB01", "hub01.contoso.test"),
        };
        let ctx = ServerContext {
            role,
            server_name: name.into(),
            fqdn: fqdn.parse().expect("valid"),
        };
        SnapshotBuilder {
            snap: Snapshot {
                generation: 1,
                transport: stored(TransportSettings::defaults(role, ctx.fqdn.clone())),
                ctx,
                receive_connectors: vec![],
                send_connectors: vec![],
                accepted_domains: vec![],
                credentials: vec![],
                certificates: vec![],
                certificate_info: Default::default(),
                anti_spam: super::AntiSpam::defaults(role),
                dkim_keys: vec![],
                webhooks: vec![],
                acme_certificates: vec![],
                drain: Stored::unwritten(Default::default()),
            },
        }
    }

    pub fn with_accepted_domain(mut self, body: Value) -> Self {
        let first = self.snap.accepted_domains.is_empty();
        let d = AcceptedDomain::from_create(&body, &self.snap.ctx, first).expect("valid domain");
        self.snap.accepted_domains.push(stored(d));
        self
    }

    pub fn with_send_connector(mut self, body: Value) -> Self {
        let c = SendConnector::from_create(&body, &self.snap.ctx).expect("valid send connector");
        self.snap.send_connectors.push(stored(c));
        self
    }

    pub fn with_receive_connector(mut self, body: Value) -> Self {
        let c =
            ReceiveConnector::from_create(&body, &self.snap.ctx).expect("valid receive connector");
        self.snap.receive_connectors.push(stored(c));
        self
    }

    /// Applies a merge patch to the transport settings.
    pub fn with_transport(mut self, patch: Value) -> Self {
        self.snap.transport.spec = self
            .snap
            .transport
            .spec
            .patched(&patch)
            .expect("valid settings");
        self
    }

    pub fn build(self) -> Snapshot {
        self.snap
    }
}
