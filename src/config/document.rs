//! The whole configuration as one document (Exchange's cloned Edge
//! configuration, done as code): every object by kind and name, secrets
//! left out, in a stable order so that two exports of the same
//! configuration are byte for byte the same. The API's `PUT /api/v1/config`
//! reads it back (`api::config_doc`); this module writes it and names its
//! version.

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{ConfigObject, Snapshot};
use crate::store::Stored;

/// The document's format, in its `apiVersion` member.
pub const API_VERSION: &str = "ferry/v1";
/// Its `kind` member.
pub const KIND: &str = "Configuration";

/// The sections holding many objects, keyed by name, in document order.
pub const COLLECTIONS: &[&str] = &[
    "acceptedDomains",
    "certificates",
    "credentials",
    "receiveConnectors",
    "sendConnectors",
    "ipListEntries",
    "ipListProviders",
    "dkimSigningKeys",
    "webhooks",
    "acmeCertificates",
];

/// The sections holding one document each.
pub const SINGLETONS: &[&str] = &[
    "transportSettings",
    "transportAgents",
    "ipBlockListConfig",
    "ipAllowListConfig",
    "senderFilterConfig",
    "recipientFilterConfig",
    "attachmentFilterConfig",
    "contentFilterConfig",
    "senderIdConfig",
    "addressRewriteEntries",
    "transportRules",
];

fn spec<T: Serialize>(s: &T, drop_name: bool) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if drop_name && let Value::Object(m) = &mut v {
        m.remove("name");
    }
    v
}

fn by_name<T: ConfigObject>(items: &[Stored<T>], drop_name: bool) -> Value {
    // serde_json's Map is ordered by key: the order is the names'.
    Value::Object(
        items
            .iter()
            .filter(|o| !o.spec.managed())
            .map(|o| (o.spec.name(), spec(&o.spec, drop_name)))
            .collect(),
    )
}

/// The configuration as a document: no ids, versions or times, no secret
/// (passwords, private keys and signing keys are supplied by reference on
/// import), objects keyed by their name — a certificate by its SHA-256
/// thumbprint, an IP list entry by `List:range`, a DKIM key by its record
/// name.
pub fn export(s: &Snapshot) -> Value {
    let a = &s.anti_spam;
    let mut doc = Map::new();
    doc.insert("apiVersion".into(), API_VERSION.into());
    doc.insert("kind".into(), KIND.into());
    doc.insert("acceptedDomains".into(), by_name(&s.accepted_domains, true));
    doc.insert("certificates".into(), by_name(&s.certificates, false));
    doc.insert("credentials".into(), by_name(&s.credentials, true));
    doc.insert(
        "receiveConnectors".into(),
        by_name(&s.receive_connectors, true),
    );
    doc.insert("sendConnectors".into(), by_name(&s.send_connectors, true));
    doc.insert("ipListEntries".into(), by_name(&a.ip_list_entries, false));
    doc.insert(
        "ipListProviders".into(),
        by_name(&a.ip_list_providers, true),
    );
    doc.insert("dkimSigningKeys".into(), by_name(&s.dkim_keys, false));
    doc.insert("webhooks".into(), by_name(&s.webhooks, true));
    doc.insert(
        "acmeCertificates".into(),
        by_name(&s.acme_certificates, true),
    );
    for (k, v) in [
        ("transportSettings", spec(&s.transport.spec, false)),
        ("transportAgents", spec(&a.agents.spec, false)),
        (
            "ipBlockListConfig",
            spec(&a.ip_block_list_config.spec, false),
        ),
        (
            "ipAllowListConfig",
            spec(&a.ip_allow_list_config.spec, false),
        ),
        (
            "senderFilterConfig",
            spec(&a.sender_filter_config.spec, false),
        ),
        (
            "recipientFilterConfig",
            spec(&a.recipient_filter_config.spec, false),
        ),
        (
            "attachmentFilterConfig",
            spec(&a.attachment_filter_config.spec, false),
        ),
        (
            "contentFilterConfig",
            spec(&a.content_filter_config.spec, false),
        ),
        ("senderIdConfig", spec(&a.sender_id_config.spec, false)),
        (
            "addressRewriteEntries",
            spec(&a.address_rewrite_entries.spec, false),
        ),
        ("transportRules", spec(&a.transport_rules.spec, false)),
    ] {
        doc.insert(k.into(), v);
    }
    Value::Object(doc)
}

/// The configuration's version, for `ETag` and `If-Match`: a digest of
/// the exported document and of every sealed secret, so any change — a new
/// password too — gives a new version, and a restart keeps it. What Ferry
/// makes itself is not part of it: ACME-issued certificates and ACME
/// account keys change without anyone changing the configuration.
pub fn version(s: &Snapshot) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&export(s)).unwrap_or_default());
    fn secrets<T: ConfigObject>(h: &mut Sha256, items: &[Stored<T>]) {
        for o in items.iter().filter(|o| !o.spec.managed()) {
            if let Some(secret) = &o.secret {
                h.update(o.id.as_bytes());
                h.update(secret);
            }
        }
    }
    secrets(&mut h, &s.credentials);
    secrets(&mut h, &s.certificates);
    secrets(&mut h, &s.dkim_keys);
    secrets(&mut h, &s.webhooks);
    format!("cfg-{}", &hex::encode(h.finalize())[..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_is_exported_once_in_a_stable_order() {
        let snap = crate::config::builder::SnapshotBuilder::new(crate::model::Role::Edge).build();
        let doc = export(&snap);
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        let mut want: Vec<&str> = vec!["apiVersion", "kind"];
        want.extend(COLLECTIONS);
        want.extend(SINGLETONS);
        want.sort();
        assert_eq!(keys, want);
        assert_eq!(
            serde_json::to_vec(&doc).unwrap(),
            serde_json::to_vec(&export(&snap)).unwrap()
        );
        assert_eq!(version(&snap), version(&snap));
        assert!(version(&snap).starts_with("cfg-"));
    }
}
