//! Envelope addresses. `Address` is parsed once where an address arrives
//! (MAIL FROM, RCPT TO, a notice Ferry writes) and carried as it is through
//! the queue to the next hop's MAIL/RCPT. This is also the one place that
//! turns an address (local part unquoted, as smtp-proto gives it) into the
//! wire form of RFC 5321 §4.1.2, quoting the local part when it is not a
//! dot-atom: every outbound MAIL/RCPT and every generated header uses it,
//! so a quoted local part can never turn into extra envelope parameters at
//! the next hop. And the checks on addresses that arrive: control
//! characters, and the sender-specified routing of the percent hack and
//! bang paths.

use std::borrow::Cow;
use std::fmt;

use super::Domain;

/// An envelope address: the null reverse path `<>` (empty), a domain-less
/// `postmaster` (RFC 5321 §4.5.1), or `local@domain`, split at the last
/// `@`. The local part is kept unquoted; the text is as it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Address {
    text: String,
    /// Where the domain's `@` is.
    at: Option<usize>,
}

impl Address {
    /// The null reverse path `<>`.
    pub fn null() -> Address {
        Address::default()
    }

    /// An address as it arrives. Control characters are refused (a CR or
    /// LF would end the line at the next hop; NUL ends C strings).
    pub fn parse(text: impl Into<String>) -> Result<Address, String> {
        let text = text.into();
        if has_control_characters(&text) {
            return Err(format!("{text:?} has control characters"));
        }
        Ok(Address::stored(text))
    }

    /// An address read back from the queue, written there by `parse`.
    fn stored(text: String) -> Address {
        let at = text.rfind('@');
        Address { text, at }
    }

    pub fn is_null(&self) -> bool {
        self.text.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn local_part(&self) -> &str {
        match self.at {
            Some(at) => &self.text[..at],
            None => &self.text,
        }
    }

    /// The domain as written, if there is one.
    pub fn domain(&self) -> Option<&str> {
        self.at.map(|at| &self.text[at + 1..])
    }

    /// The domain, parsed; None when there is none or it is not a domain
    /// name (an address literal, say).
    pub fn domain_name(&self) -> Option<Domain> {
        self.domain().and_then(|d| d.parse().ok())
    }

    /// `postmaster` without a domain: always local (RFC 5321 §4.5.1).
    pub fn is_bare_postmaster(&self) -> bool {
        self.at.is_none() && self.text.eq_ignore_ascii_case("postmaster")
    }

    /// `local@domain` with the local part quoted as needed.
    pub fn mailbox(&self) -> Cow<'_, str> {
        mailbox(&self.text)
    }

    /// `<local@domain>`: the reverse or forward path on the wire.
    pub fn path(&self) -> String {
        path(&self.text)
    }

    /// Sender-specified routing in the local part (see `has_source_routing`).
    pub fn has_source_routing(&self) -> bool {
        has_source_routing(&self.text)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.text
    }
}

/// Stored as its text (the queue writer's rusqlite connection).
impl rusqlite::ToSql for Address {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.text.as_str()))
    }
}

/// Read back as its text (the queue's readers).
impl sqlx::Type<sqlx::Sqlite> for Address {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
    fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for Address {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <String as sqlx::Decode<'r, sqlx::Sqlite>>::decode(value)?;
        Ok(Address::stored(text))
    }
}

/// `atext` of RFC 5322 §3.2.3 (ASCII), plus any non-ASCII character,
/// which RFC 6531 admits in an SMTPUTF8 dot-atom.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|a| !a.is_empty() && a.chars().all(is_atext))
}

/// The local part as it must be written: itself when it is a dot-atom,
/// otherwise a quoted string with `"` and `\` escaped.
pub fn quote_local_part(local: &str) -> Cow<'_, str> {
    if is_dot_atom(local) {
        return Cow::Borrowed(local);
    }
    let mut q = String::with_capacity(local.len() + 2);
    q.push('"');
    for c in local.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    Cow::Owned(q)
}

/// `local@domain` with the local part quoted as needed; `""` stays empty
/// (the null reverse path) and a domain-less `postmaster` stays as it is.
pub fn mailbox(address: &str) -> Cow<'_, str> {
    match address.rsplit_once('@') {
        Some((local, domain)) => match quote_local_part(local) {
            Cow::Borrowed(_) => Cow::Borrowed(address),
            Cow::Owned(q) => Cow::Owned(format!("{q}@{domain}")),
        },
        None if address.is_empty() => Cow::Borrowed(address),
        None => quote_local_part(address),
    }
}

/// `<local@domain>`: a reverse or forward path on the wire.
pub fn path(address: &str) -> String {
    format!("<{}>", mailbox(address))
}

/// NUL, other C0 controls and DEL: never part of an address Ferry accepts.
pub fn has_control_characters(address: &str) -> bool {
    address.chars().any(|c| c.is_control())
}

/// Sender-specified routing inside the local part: `user%host@domain` (the
/// percent hack), `host!user@domain` (a UUCP bang path) or a quoted
/// `"user@host"@domain`. A downstream MTA that honours any of them relays
/// for whoever wrote it, so only clients that may relay anyway send them
/// (Postfix's `allow_untrusted_routing = no`).
pub fn has_source_routing(address: &str) -> bool {
    address
        .rsplit_once('@')
        .is_some_and(|(local, _)| local.contains(['%', '!', '@']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_split_once_at_its_last_at() {
        let a = Address::parse("first.last@Contoso.Test").unwrap();
        assert_eq!(a.local_part(), "first.last");
        assert_eq!(a.domain(), Some("Contoso.Test"));
        assert_eq!(a.domain_name().unwrap().as_str(), "contoso.test");
        let quoted = Address::parse("a@b@contoso.test").unwrap();
        assert_eq!(quoted.local_part(), "a@b");
        assert!(quoted.has_source_routing());
        assert_eq!(quoted.path(), "<\"a@b\"@contoso.test>");
        assert!(Address::null().is_null());
        assert_eq!(Address::null().path(), "<>");
        let pm = Address::parse("PostMaster").unwrap();
        assert!(pm.is_bare_postmaster() && pm.domain().is_none());
        assert!(
            !Address::parse("postmaster@x.test")
                .unwrap()
                .is_bare_postmaster()
        );
        assert!(Address::parse("a\rb@x.test").is_err());
        assert_eq!(Address::parse("[127.0.0.1]").unwrap().domain_name(), None);
    }

    #[test]
    fn dot_atoms_are_written_as_they_are() {
        assert_eq!(path("bob@contoso.test"), "<bob@contoso.test>");
        assert_eq!(
            path("first.last+tag@contoso.test"),
            "<first.last+tag@contoso.test>"
        );
        assert_eq!(path(""), "<>");
        assert_eq!(path("postmaster"), "<postmaster>");
        assert_eq!(path("jöran@contoso.test"), "<jöran@contoso.test>");
    }

    #[test]
    fn other_local_parts_are_quoted_so_nothing_escapes_the_brackets() {
        assert_eq!(
            path("victim@victim.example> NOTIFY=NEVER@contoso.test"),
            "<\"victim@victim.example> NOTIFY=NEVER\"@contoso.test>"
        );
        assert_eq!(path("a b@x.test"), "<\"a b\"@x.test>");
        assert_eq!(path("a\"b\\c@x.test"), "<\"a\\\"b\\\\c\"@x.test>");
        assert_eq!(path(".lead@x.test"), "<\".lead\"@x.test>");
        assert_eq!(path("two..dots@x.test"), "<\"two..dots\"@x.test>");
    }

    #[test]
    fn routing_and_control_characters_are_spotted() {
        assert!(has_source_routing("user%victim.example@contoso.test"));
        assert!(has_source_routing("victim.example!user@contoso.test"));
        assert!(has_source_routing("user@victim.example@contoso.test"));
        assert!(!has_source_routing("user@contoso.test"));
        assert!(has_control_characters("a\0b@x.test"));
        assert!(has_control_characters("a\x1bb@x.test"));
        assert!(!has_control_characters("ab@x.test"));
    }
}
