//! Maildir delivery for the Hub's mailbox domains: one Maildir per recipient
//! under `<data-dir>/mailboxes/<domain>/<local-part>/Maildir`, written the
//! Maildir way (tmp/, fsync, rename into new/, fsync the directory).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::model::Address;

/// The Maildir of an address.
pub fn maildir_of(data_dir: &Path, address: &Address) -> PathBuf {
    let (local, domain) = (
        address.local_part(),
        address.domain().unwrap_or("localhost"),
    );
    let clean = |s: &str| {
        let s: String = s
            .to_lowercase()
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || "-_+=.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        s.trim_start_matches('.').to_string()
    };
    data_dir
        .join("mailboxes")
        .join(clean(domain))
        .join(clean(local))
        .join("Maildir")
}

/// Writes one message into the Maildir of `mailbox` (the recipient's
/// primary address), or its Junk folder (Maildir++ `.Junk`) when `junk`,
/// with Return-Path and Delivered-To (the recipient as addressed) on top;
/// returns the file's path.
pub fn deliver(
    data_dir: &Path,
    sender: &Address,
    recipient: &Address,
    mailbox: &Address,
    body: &[u8],
    junk: bool,
) -> std::io::Result<PathBuf> {
    let mut dir = maildir_of(data_dir, mailbox);
    if junk {
        dir = dir.join(".Junk");
    }
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let name = format!(
        "{}.{}.ferry",
        time::OffsetDateTime::now_utc().unix_timestamp(),
        uuid::Uuid::new_v4().simple()
    );
    let tmp = dir.join("tmp").join(&name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    f.write_all(
        format!(
            "Return-Path: {}\r\nDelivered-To: {}\r\n",
            sender.path(),
            recipient.mailbox()
        )
        .as_bytes(),
    )?;
    f.write_all(body)?;
    f.sync_all()?;
    let new = dir.join("new").join(&name);
    std::fs::rename(&tmp, &new)?;
    std::fs::File::open(dir.join("new"))?.sync_all()?;
    Ok(new)
}
