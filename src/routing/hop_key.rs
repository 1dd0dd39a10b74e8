//! The identity of a delivery queue, as the router decided it and as the
//! queue stores it (`recipients.next_hop`, `queues.next_hop`): a send
//! connector and its next hop, a mailbox domain, or Unreachable. This is
//! the one place that knows the stored form (`<connector id>|<next hop>`,
//! `mailbox|<domain>`, `Unreachable`); everything else works with the enum.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::config::Snapshot;
use crate::model::SendConnector;
use crate::store::Stored;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HopKey {
    /// Through a send connector to a next hop: the recipient domain (DNS
    /// routing) or the connector's smart hosts, comma-separated.
    Connector { id: Uuid, next_hop: String },
    /// Into the mailboxes of an accepted domain (Hub).
    Mailbox { domain: String },
    /// No connector can take it (rule 17).
    Unreachable,
}

pub const UNREACHABLE: &str = "Unreachable";
const MAILBOX: &str = "mailbox|";

impl HopKey {
    /// The next hop as the queue viewer shows it.
    pub fn next_hop(&self) -> &str {
        match self {
            HopKey::Connector { next_hop, .. } => next_hop,
            HopKey::Mailbox { domain } => domain,
            HopKey::Unreachable => UNREACHABLE,
        }
    }

    /// The send connector of this queue, if it still exists.
    pub fn connector<'a>(&self, snap: &'a Snapshot) -> Option<&'a Stored<SendConnector>> {
        match self {
            HopKey::Connector { id, .. } => snap.send_connectors.iter().find(|c| c.id == *id),
            _ => None,
        }
    }

    /// The name tracking and metrics give this queue's connector:
    /// `mailbox` for mailbox delivery, the key itself if the connector is gone.
    pub fn connector_name(&self, snap: &Snapshot) -> String {
        match self {
            HopKey::Mailbox { .. } => "mailbox".into(),
            _ => self
                .connector(snap)
                .map(|c| c.spec.name.clone())
                .unwrap_or_else(|| self.to_string()),
        }
    }
}

impl fmt::Display for HopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HopKey::Connector { id, next_hop } => write!(f, "{id}|{next_hop}"),
            HopKey::Mailbox { domain } => write!(f, "{MAILBOX}{domain}"),
            HopKey::Unreachable => f.write_str(UNREACHABLE),
        }
    }
}

impl FromStr for HopKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == UNREACHABLE {
            return Ok(HopKey::Unreachable);
        }
        if let Some(domain) = s.strip_prefix(MAILBOX) {
            return Ok(HopKey::Mailbox {
                domain: domain.to_string(),
            });
        }
        let (id, next_hop) = s
            .split_once('|')
            .ok_or_else(|| format!("'{s}' is not a delivery queue key"))?;
        Ok(HopKey::Connector {
            id: id
                .parse()
                .map_err(|_| format!("'{s}' names no connector id"))?,
            next_hop: next_hop.to_string(),
        })
    }
}

impl HopKey {
    /// An SQL `LIKE` pattern for every queue key of one send connector.
    pub fn connector_pattern(id: &Uuid) -> String {
        format!("{id}|%")
    }
}

/// Stored as its text form (the writer's rusqlite connection).
impl rusqlite::ToSql for HopKey {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.to_string()))
    }
}

/// Stored as its text form (the readers' sqlx pool).
impl sqlx::Type<sqlx::Sqlite> for HopKey {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
    fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for HopKey {
    fn encode_by_ref(
        &self,
        args: &mut Vec<sqlx::sqlite::SqliteArgumentValue<'q>>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'q, sqlx::Sqlite>>::encode(self.to_string(), args)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for HopKey {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<'r, sqlx::Sqlite>>::decode(value)?;
        Ok(text.parse::<HopKey>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_reads_back_as_written() {
        let id = Uuid::new_v4();
        for k in [
            HopKey::Connector {
                id,
                next_hop: "hub01.corp.contoso.test,hub02.corp.contoso.test".into(),
            },
            HopKey::Mailbox {
                domain: "contoso.test".into(),
            },
            HopKey::Unreachable,
        ] {
            assert_eq!(k.to_string().parse::<HopKey>().unwrap(), k);
        }
        assert_eq!(
            format!("{id}|fabrikam.test")
                .parse::<HopKey>()
                .unwrap()
                .next_hop(),
            "fabrikam.test"
        );
        assert!("garbage".parse::<HopKey>().is_err());
        let pattern = HopKey::connector_pattern(&id);
        let key = HopKey::Connector {
            id,
            next_hop: "x".into(),
        };
        assert!(key.to_string().starts_with(pattern.trim_end_matches('%')));
    }
}
