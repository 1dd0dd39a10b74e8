//! The recipient directory Ferry holds: every primary address and alias of
//! every recipient, in memory as one hash map (lookups are O(1), whatever
//! its size), loaded from the configuration database at start and swapped
//! whole on every change, so a lookup never waits on a write. It is the
//! `List` source of recipient validation on an Edge and the mailbox
//! directory of a Hub's domains that use it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::config::ServiceError;
use crate::model::recipient::{self, DirectoryRecipient};
use crate::store::Store;

pub struct Directory {
    store: Store,
    /// Lower-cased address → its recipient's primary address (lower-cased).
    index: RwLock<Arc<HashMap<String, String>>>,
    /// One write at a time.
    writer: tokio::sync::Mutex<()>,
}

impl Directory {
    pub async fn open(store: Store) -> anyhow::Result<Arc<Directory>> {
        let index: HashMap<String, String> = store.directory().await?.into_iter().collect();
        Ok(Arc::new(Directory {
            store,
            index: RwLock::new(Arc::new(index)),
            writer: tokio::sync::Mutex::new(()),
        }))
    }

    fn index(&self) -> Arc<HashMap<String, String>> {
        self.index.read().expect("not poisoned").clone()
    }

    /// The primary address of the recipient that answers to `address`.
    pub fn lookup(&self, address: &str) -> Option<String> {
        self.index
            .read()
            .expect("not poisoned")
            .get(&address.to_ascii_lowercase())
            .cloned()
    }

    /// How many recipients there are.
    pub fn recipients(&self) -> usize {
        let index = self.index();
        index.iter().filter(|(a, p)| a == p).count()
    }

    /// Every recipient with its aliases, by primary address.
    pub fn export(&self) -> Vec<DirectoryRecipient> {
        let index = self.index();
        let mut by_primary: HashMap<&str, Vec<&str>> = HashMap::new();
        for (a, p) in index.iter() {
            let aliases = by_primary.entry(p).or_default();
            if a != p {
                aliases.push(a);
            }
        }
        let mut out: Vec<DirectoryRecipient> = by_primary
            .into_iter()
            .map(|(p, mut aliases)| {
                aliases.sort();
                DirectoryRecipient {
                    primary_address: p.to_string(),
                    aliases: aliases.into_iter().map(str::to_string).collect(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.primary_address.cmp(&b.primary_address));
        out
    }

    /// The recipient answering to `address`, with its aliases.
    pub fn get(&self, address: &str) -> Option<DirectoryRecipient> {
        let primary = self.lookup(address)?;
        let index = self.index();
        let mut aliases: Vec<String> = index
            .iter()
            .filter(|(a, p)| **p == primary && **a != primary)
            .map(|(a, _)| a.clone())
            .collect();
        aliases.sort();
        Some(DirectoryRecipient {
            primary_address: primary,
            aliases,
        })
    }

    /// Adds recipients, or replaces the addresses of those already there
    /// (by primary address); with `replace`, the whole directory becomes
    /// `recipients`. All or nothing.
    pub async fn write(
        &self,
        recipients: Vec<DirectoryRecipient>,
        replace: bool,
    ) -> Result<usize, ServiceError> {
        let _guard = self.writer.lock().await;
        let current = self.index();
        let (rows, next) = tokio::task::spawn_blocking(move || {
            let existing = if replace {
                HashMap::new()
            } else {
                (*current).clone()
            };
            recipient::validate(&recipients, &existing)?;
            let mut next = existing;
            if !replace {
                let rewritten: std::collections::HashSet<String> = recipients
                    .iter()
                    .map(|r| r.primary_address.to_ascii_lowercase())
                    .collect();
                next.retain(|_, p| !rewritten.contains(p));
            }
            let mut rows = Vec::with_capacity(recipients.len());
            for r in &recipients {
                let primary = r.primary_address.to_ascii_lowercase();
                for a in r.addresses() {
                    next.insert(a.clone(), primary.clone());
                    rows.push((a, primary.clone()));
                }
            }
            Ok::<_, ServiceError>((rows, next))
        })
        .await
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))??;
        self.store.write_directory(&rows, replace).await?;
        note_changes(&self.index(), &next);
        let count = next.iter().filter(|(a, p)| a == p).count();
        *self.index.write().expect("not poisoned") = Arc::new(next);
        Ok(count)
    }

    /// Removes the recipient answering to `address`; false if none does.
    pub async fn remove(&self, address: &str) -> Result<bool, ServiceError> {
        let _guard = self.writer.lock().await;
        let Some(primary) = self.lookup(address) else {
            return Ok(false);
        };
        self.store.remove_recipient(&primary).await?;
        let mut next = (*self.index()).clone();
        next.retain(|_, p| *p != primary);
        note_changes(&self.index(), &next);
        *self.index.write().expect("not poisoned") = Arc::new(next);
        Ok(true)
    }
}

/// Tells the admin audit log which recipients a change added, removed or
/// gave other aliases (`/recipients/<primary address>`, the aliases as
/// the value).
fn note_changes(old: &HashMap<String, String>, new: &HashMap<String, String>) {
    use crate::config::audit;
    if !audit::recording() {
        return;
    }
    fn grouped(index: &HashMap<String, String>) -> serde_json::Value {
        let mut by: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (a, p) in index {
            let e = by.entry(p).or_default();
            if a != p {
                e.push(a);
            }
        }
        let mut recipients = serde_json::Map::new();
        for (p, mut aliases) in by {
            aliases.sort();
            recipients.insert(p.to_string(), serde_json::json!({ "aliases": aliases }));
        }
        serde_json::json!({ "recipients": recipients })
    }
    let mut out = vec![];
    audit::diff(&grouped(old), &grouped(new), &mut String::new(), &mut out);
    audit::note(out);
}
