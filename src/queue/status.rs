//! The queue's status vocabulary and its one mapping to text, in SQL and
//! in the API: every status literal lives here.

use std::fmt;
use std::str::FromStr;

/// Where one recipient of a queued message stands (`recipients.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecipientStatus {
    /// Waiting for its first attempt, or for its queue.
    Ready,
    /// Deferred: tried again at `next_attempt`.
    Retry,
    /// Accepted by the next hop or written to its mailbox.
    Delivered,
    /// Refused for good, expired, or removed with an NDR; its NDR is
    /// still to be sent.
    Failed,
    /// Failed, and its NDR has been queued (or there was none to send).
    Bounced,
    /// Removed by an administrator without an NDR.
    Removed,
}

/// The pending statuses as an SQL list, for `status IN pending_sql!()`.
/// A macro, so queries stay `&'static str`; a test checks it against the enum.
#[macro_export]
macro_rules! pending_sql {
    () => {
        "('Ready','Retry')"
    };
}

impl RecipientStatus {
    pub const ALL: [RecipientStatus; 6] = [
        RecipientStatus::Ready,
        RecipientStatus::Retry,
        RecipientStatus::Delivered,
        RecipientStatus::Failed,
        RecipientStatus::Bounced,
        RecipientStatus::Removed,
    ];

    /// The pending statuses (`pending_sql!()`), one by one.
    pub const PENDING: [RecipientStatus; 2] = [RecipientStatus::Ready, RecipientStatus::Retry];

    pub const fn as_str(self) -> &'static str {
        match self {
            RecipientStatus::Ready => "Ready",
            RecipientStatus::Retry => "Retry",
            RecipientStatus::Delivered => "Delivered",
            RecipientStatus::Failed => "Failed",
            RecipientStatus::Bounced => "Bounced",
            RecipientStatus::Removed => "Removed",
        }
    }

    /// Still to be delivered (Ready or Retry).
    pub const fn is_pending(self) -> bool {
        matches!(self, RecipientStatus::Ready | RecipientStatus::Retry)
    }
}

impl fmt::Display for RecipientStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecipientStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not a recipient status"))
    }
}

impl rusqlite::ToSql for RecipientStatus {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
    }
}

/// What a row of a message's attempt history records (`attempts.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A transaction completed (each recipient has its own result).
    Send,
    /// Deferred: the connection failed or was lost.
    Defer,
    /// Failed for good (the next hop cannot exist).
    Fail,
}

impl AttemptOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Send => "SEND",
            AttemptOutcome::Defer => "DEFER",
            AttemptOutcome::Fail => "FAIL",
        }
    }
}

impl rusqlite::ToSql for AttemptOutcome {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
    }
}

/// A delivery queue's or a message's state as the queue viewer shows it
/// (Get-Queue's and Get-Message's Status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
pub enum ViewStatus {
    Active,
    Ready,
    Retry,
    Suspended,
    PendingSuspend,
    PendingRemove,
}

impl ViewStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ViewStatus::Active => "Active",
            ViewStatus::Ready => "Ready",
            ViewStatus::Retry => "Retry",
            ViewStatus::Suspended => "Suspended",
            ViewStatus::PendingSuspend => "PendingSuspend",
            ViewStatus::PendingRemove => "PendingRemove",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_list_of_pending_statuses_matches_the_enum() {
        let from_enum = format!(
            "({})",
            RecipientStatus::ALL
                .iter()
                .filter(|s| s.is_pending())
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(pending_sql!(), from_enum);
        let pending: Vec<_> = RecipientStatus::ALL
            .into_iter()
            .filter(|s| s.is_pending())
            .collect();
        assert_eq!(RecipientStatus::PENDING.to_vec(), pending);
        for s in RecipientStatus::ALL {
            assert_eq!(s.as_str().parse::<RecipientStatus>().unwrap(), s);
        }
    }
}
