//! Drain (Exchange's maintenance mode, KumoMTA's `xfer`): a server that
//! takes no new mail, delivers what it holds, and can hand the rest to
//! another server over a send connector, so it can be removed or upgraded
//! without stranding a message.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The server's drain state, one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrainState {
    /// New sessions are refused with `421 4.3.2`.
    pub draining: bool,
    /// The send connector every message is handed to while draining (its
    /// smart host is the other server; it authenticates and requires TLS);
    /// none: messages are delivered as they route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_via: Option<String>,
}

/// The header that carries a message's original arrival time (RFC 3339,
/// milliseconds) to the server it is transferred to; honoured only from a
/// session holding ms-Exch-Accept-Headers-Organization, and removed from
/// every other.
pub const ARRIVAL_HEADER: &str = "X-Ferry-Organization-OriginalArrivalTime";
