//! Message tracking's vocabulary: the kinds of event and where they come
//! from, each with its one mapping to the text stored and shown (Exchange's
//! EventId and Source columns).

use std::fmt;
use std::str::FromStr;

/// What happened to a message (Exchange's EventId).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventKind {
    /// Accepted by a receive connector, or a notice queued by Ferry.
    #[default]
    Receive,
    /// Recipients put in a delivery queue.
    Route,
    /// Accepted by the next hop over SMTP/LMTP.
    Send,
    /// Written into a mailbox (Maildir).
    Deliver,
    /// Deferred: tried again later.
    Defer,
    /// Refused for good.
    Fail,
    /// A delivery status notification was queued about it.
    Dsn,
    /// Its time in the queue ran out.
    Expire,
    Resubmit,
    Suspend,
    Resume,
    /// Removed by an administrator.
    Delete,
    /// A transport agent acted (rejected a recipient, allowed a client…).
    Agent,
}

/// The component that recorded an event (Exchange's Source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Source {
    #[default]
    Smtp,
    Routing,
    Queue,
    Dsn,
    Admin,
    StoreDriver,
    /// A transport agent.
    Agent,
}

impl EventKind {
    pub const ALL: [EventKind; 13] = [
        EventKind::Receive,
        EventKind::Route,
        EventKind::Send,
        EventKind::Deliver,
        EventKind::Defer,
        EventKind::Fail,
        EventKind::Dsn,
        EventKind::Expire,
        EventKind::Resubmit,
        EventKind::Suspend,
        EventKind::Resume,
        EventKind::Delete,
        EventKind::Agent,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Receive => "RECEIVE",
            EventKind::Route => "ROUTE",
            EventKind::Send => "SEND",
            EventKind::Deliver => "DELIVER",
            EventKind::Defer => "DEFER",
            EventKind::Fail => "FAIL",
            EventKind::Dsn => "DSN",
            EventKind::Expire => "EXPIRE",
            EventKind::Resubmit => "RESUBMIT",
            EventKind::Suspend => "SUSPEND",
            EventKind::Resume => "RESUME",
            EventKind::Delete => "DELETE",
            EventKind::Agent => "AGENT",
        }
    }
}

impl Source {
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Smtp => "SMTP",
            Source::Routing => "ROUTING",
            Source::Queue => "QUEUE",
            Source::Dsn => "DSN",
            Source::Admin => "ADMIN",
            Source::StoreDriver => "STOREDRIVER",
            Source::Agent => "AGENT",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not a tracking event"))
    }
}

impl rusqlite::ToSql for EventKind {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
    }
}

impl rusqlite::ToSql for Source {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_kind_reads_back_as_written() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), k);
        }
        assert!("SENT".parse::<EventKind>().is_err());
    }
}
