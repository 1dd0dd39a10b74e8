//! What is known about a message when it is accepted: its envelope.
//! A leaf of the queue's vocabulary: the store writes it, the SMTP session
//! builds it, and it imports neither.

use crate::model::Address;
use crate::routing::QueueKey;

/// One recipient of an accepted message.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub address: Address,
    /// RFC 3461 ORCPT, as given.
    pub orcpt: Option<String>,
    /// RFC 3461 NOTIFY flags (smtp-proto's RCPT_NOTIFY_* bits).
    pub notify: u64,
    /// Its delivery queue, when the session routed it at acceptance: it is
    /// written with the message, in the same commit, and the categorizer
    /// has nothing left to do for it. None: routed by the categorizer.
    pub route: Option<QueueKey>,
}

/// Everything known about a message when it is accepted.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub message_id: String,
    /// The null reverse-path `<>` is `Address::null()`.
    pub sender: Address,
    pub recipients: Vec<Recipient>,
    pub receive_connector: String,
    pub client_ip: String,
    pub client_helo: Option<String>,
    pub auth_user: Option<String>,
    pub env_id: Option<String>,
    pub ret: Option<String>,
    pub body_type: Option<String>,
    pub smtputf8: bool,
    /// RFC 8689 REQUIRETLS.
    pub require_tls: bool,
    /// The Subject header, kept for message tracking (None when subject
    /// logging is off).
    pub subject: Option<String>,
    /// When the message first arrived in the organization, if another
    /// server held it before (a transfer from a drained server); None: now.
    pub arrived_ms: Option<i64>,
}
