//! What a change did, for the admin audit log (Exchange's
//! `Search-AdminAuditLog`): the fields it changed, each with its old and
//! new value, secrets masked. The API runs every mutation inside
//! [`scope`]; the configuration service (and the recipient directory) then
//! [`note`] what they changed, so whatever path a change takes — a handler,
//! a later config import — it is described the same way.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::cell::RefCell;
use utoipa::ToSchema;

use super::Snapshot;
use crate::store::Stored;

/// At most this many changes are kept per entry (a bulk import of 100,000
/// entries is summed up by the count of the rest).
pub const MAX_CHANGES: usize = 200;

/// How a secret shows in the audit log: set, changed, never its value.
pub const MASK: &str = "********";

/// One changed field, after RFC 6902's operations, with both values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    /// `add`, `remove` or `replace`.
    pub op: String,
    /// A JSON pointer: `/receiveConnectors/Default EDGE01/maxMessageSize`.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// The changes noted within one [`scope`].
#[derive(Debug, Default)]
pub struct Recorded {
    pub changes: Vec<FieldChange>,
    /// Changes left out past [`MAX_CHANGES`].
    pub more: usize,
}

tokio::task_local! {
    static RECORDER: RefCell<Recorded>;
}

/// Runs `f` recording what it changes.
pub async fn scope<F: std::future::Future>(f: F) -> (F::Output, Recorded) {
    RECORDER
        .scope(RefCell::new(Recorded::default()), async {
            let out = f.await;
            (out, RECORDER.with(|r| r.take()))
        })
        .await
}

/// Whether a [`scope`] is recording (diffs are computed only then).
pub fn recording() -> bool {
    RECORDER.try_with(|_| ()).is_ok()
}

/// Adds changes to the current [`scope`], if any.
pub fn note(changes: impl IntoIterator<Item = FieldChange>) {
    let _ = RECORDER.try_with(|r| {
        let mut r = r.borrow_mut();
        for mut c in changes {
            if r.changes.len() >= MAX_CHANGES {
                r.more += 1;
                continue;
            }
            for v in [&mut c.old, &mut c.new].into_iter().flatten() {
                mask(v);
            }
            r.changes.push(c);
        }
    });
}

/// Notes what changed between two published snapshots.
pub fn note_snapshots(old: &Snapshot, new: &Snapshot) {
    if !recording() {
        return;
    }
    // One numbering of the sealed secrets for both documents, so a new
    // secret shows as a change; then only the mask is kept.
    let mut seen = std::collections::HashMap::new();
    let a = document(old, &mut seen);
    let b = document(new, &mut seen);
    let mut out = vec![];
    diff(&a, &b, &mut String::new(), &mut out);
    for c in &mut out {
        if c.path.ends_with("/secret") {
            for v in [&mut c.old, &mut c.new].into_iter().flatten() {
                *v = Value::String(MASK.into());
            }
        }
    }
    note(out);
}

/// Whether a field's value is a secret, by its name.
fn secret_name(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "privatekey",
        "private_key",
        "pfx",
        "apikey",
        "token",
    ]
    .iter()
    .any(|s| k.contains(s))
        && !k.ends_with("name")
        && !k.ends_with("id")
}

/// Masks every secret-named field, at any depth.
pub fn mask(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if secret_name(k) && !x.is_null() && !x.is_boolean() {
                    *x = Value::String(MASK.into());
                } else {
                    mask(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask),
        _ => {}
    }
}

/// Escapes a JSON pointer token (RFC 6901).
pub fn pointer_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// The field-level difference of two documents; arrays change as a whole.
pub fn diff(old: &Value, new: &Value, path: &mut String, out: &mut Vec<FieldChange>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let len = path.len();
                path.push('/');
                path.push_str(&pointer_token(k));
                match b.get(k) {
                    Some(vb) => diff(va, vb, path, out),
                    None => out.push(FieldChange {
                        op: "remove".into(),
                        path: path.clone(),
                        old: Some(va.clone()),
                        new: None,
                    }),
                }
                path.truncate(len);
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    out.push(FieldChange {
                        op: "add".into(),
                        path: format!("{path}/{}", pointer_token(k)),
                        old: None,
                        new: Some(vb.clone()),
                    });
                }
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(FieldChange {
            op: "replace".into(),
            path: path.clone(),
            old: Some(a.clone()),
            new: Some(b.clone()),
        }),
    }
}

/// A stored object as the audit log sees it: its spec, masked, and its
/// sealed secret or hash as a marker that changes when the secret does
/// (the sealed bytes differ with every new secret; the marker is only a
/// count of them, so nothing of the secret can be read back).
fn object<T: Serialize>(
    s: &Stored<T>,
    epoch: &mut std::collections::HashMap<Vec<u8>, usize>,
) -> Value {
    let mut v = serde_json::to_value(&s.spec).unwrap_or(Value::Null);
    mask(&mut v);
    if let (Value::Object(m), Some(secret)) = (&mut v, &s.secret) {
        let n = epoch.len();
        let n = *epoch.entry(secret.clone()).or_insert(n);
        m.insert("secret".into(), Value::String(format!("{MASK} #{n}")));
    }
    v
}

/// The whole configuration as one JSON document, objects by name;
/// `seen` numbers the sealed secrets.
pub fn document(s: &Snapshot, seen: &mut std::collections::HashMap<Vec<u8>, usize>) -> Value {
    let mut doc = Map::new();
    fn by_name<T: Serialize>(
        items: &[Stored<T>],
        name: impl Fn(&Stored<T>) -> String,
        seen: &mut std::collections::HashMap<Vec<u8>, usize>,
    ) -> Value {
        Value::Object(items.iter().map(|o| (name(o), object(o, seen))).collect())
    }
    use super::ConfigObject;
    doc.insert(
        "receiveConnectors".into(),
        by_name(&s.receive_connectors, |o| o.spec.name(), seen),
    );
    doc.insert(
        "sendConnectors".into(),
        by_name(&s.send_connectors, |o| o.spec.name(), seen),
    );
    doc.insert(
        "acceptedDomains".into(),
        by_name(&s.accepted_domains, |o| o.spec.name(), seen),
    );
    doc.insert(
        "credentials".into(),
        by_name(&s.credentials, |o| o.spec.name(), seen),
    );
    let mut certs = Map::new();
    for c in &s.certificates {
        let mut v = object(c, seen);
        if let Value::Object(m) = &mut v {
            m.remove("chainPem");
            if let Some(info) = s.certificate_info.get(&c.id) {
                m.insert("subject".into(), info.subject.clone().into());
                m.insert("notAfter".into(), info.not_after.to_string().into());
            }
        }
        certs.insert(c.spec.name(), v);
    }
    doc.insert("certificates".into(), Value::Object(certs));
    doc.insert("transportSettings".into(), object(&s.transport, seen));
    let a = &s.anti_spam;
    for (k, v) in [
        ("transportAgents", object(&a.agents, seen)),
        ("ipBlockListConfig", object(&a.ip_block_list_config, seen)),
        ("ipAllowListConfig", object(&a.ip_allow_list_config, seen)),
        ("senderFilterConfig", object(&a.sender_filter_config, seen)),
        (
            "recipientFilterConfig",
            object(&a.recipient_filter_config, seen),
        ),
        (
            "attachmentFilterConfig",
            object(&a.attachment_filter_config, seen),
        ),
        (
            "contentFilterConfig",
            object(&a.content_filter_config, seen),
        ),
        ("senderIdConfig", object(&a.sender_id_config, seen)),
        (
            "addressRewriteEntries",
            object(&a.address_rewrite_entries, seen),
        ),
        ("transportRules", object(&a.transport_rules, seen)),
        (
            "ipListEntries",
            by_name(&a.ip_list_entries, |o| o.spec.name(), seen),
        ),
        (
            "ipListProviders",
            by_name(&a.ip_list_providers, |o| o.spec.name(), seen),
        ),
        (
            "dkimSigningKeys",
            by_name(&s.dkim_keys, |o| o.spec.name(), seen),
        ),
        ("webhooks", by_name(&s.webhooks, |o| o.spec.name(), seen)),
        (
            "acmeCertificates",
            by_name(&s.acme_certificates, |o| o.spec.name(), seen),
        ),
        ("serverDrain", object(&s.drain, seen)),
    ] {
        doc.insert(k.into(), v);
    }
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_names_each_changed_field_with_both_values() {
        let a = json!({"rc": {"A": {"x": 1, "ranges": ["1.2.3.4"], "gone": true}}});
        let b = json!({"rc": {"A": {"x": 2, "ranges": ["1.2.3.4", "5.6.7.8"]}, "B/1": {"x": 3}}});
        let mut out = vec![];
        diff(&a, &b, &mut String::new(), &mut out);
        let ops: Vec<(String, String)> =
            out.iter().map(|c| (c.op.clone(), c.path.clone())).collect();
        assert_eq!(
            ops,
            [
                ("remove".to_string(), "/rc/A/gone".to_string()),
                ("replace".into(), "/rc/A/ranges".into()),
                ("replace".into(), "/rc/A/x".into()),
                ("add".into(), "/rc/B~11".into()),
            ]
        );
        assert_eq!(out[2].old, Some(json!(1)));
        assert_eq!(out[2].new, Some(json!(2)));
    }

    #[test]
    fn secrets_are_masked_by_name_at_any_depth() {
        let mut v = json!({"password": "hunter22", "userName": "u", "tokenName": "t",
            "nested": [{"privateKeyPem": "-----BEGIN"}], "passwordSet": true});
        mask(&mut v);
        assert_eq!(
            v,
            json!({"password": MASK, "userName": "u", "tokenName": "t",
                "nested": [{"privateKeyPem": MASK}], "passwordSet": true})
        );
    }
}
