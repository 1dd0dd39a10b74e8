//! Envelope addresses written back out: the one place that turns a parsed
//! address (local part unquoted, as smtp-proto gives it) into the wire form
//! of RFC 5321 §4.1.2, quoting the local part when it is not a dot-atom.
//! Every outbound MAIL/RCPT and every generated header uses it, so a quoted
//! local part can never turn into extra envelope parameters at the next hop.
//! Also the checks on addresses that arrive: control characters, and the
//! sender-specified routing of the percent hack and bang paths.

use std::borrow::Cow;

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
