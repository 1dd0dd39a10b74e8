//! A message's header fields as the content agents edit them: read from
//! the raw message, removed, set, added and written back, every field the
//! agents do not touch kept byte for byte (folding included) so that a
//! later signature covers what the sender wrote.

/// A message split into its header fields and the rest.
#[derive(Debug, Clone)]
pub struct Message {
    fields: Vec<Field>,
    /// The empty line that ends the header block and the body after it
    /// (empty for a message that is only headers).
    rest: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Field {
    /// The name as written, for comparison case-insensitively.
    name: String,
    /// The whole field: name, colon, value with its folds, line ending.
    raw: Vec<u8>,
}

impl Message {
    pub fn parse(raw: &[u8]) -> Message {
        // The header block ends at the first empty line (the message is
        // only headers when there is none).
        let (head, rest) = if raw.starts_with(b"\r\n") {
            (&raw[..0], raw)
        } else {
            match raw.windows(4).position(|w| w == b"\r\n\r\n") {
                Some(p) => (&raw[..p + 2], &raw[p + 2..]),
                None => (raw, &raw[raw.len()..]),
            }
        };
        let mut fields: Vec<Field> = vec![];
        let mut at = 0;
        while at < head.len() {
            let line_end = head[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(head.len(), |p| at + p + 1);
            let line = &head[at..line_end];
            match (line.first(), fields.last_mut()) {
                (Some(b' ' | b'\t'), Some(last)) => last.raw.extend_from_slice(line),
                _ => {
                    let name = line
                        .iter()
                        .position(|&b| b == b':')
                        .map(|p| String::from_utf8_lossy(&line[..p]).trim().to_string())
                        .unwrap_or_default();
                    fields.push(Field {
                        name,
                        raw: line.to_vec(),
                    });
                }
            }
            at = line_end;
        }
        Message {
            fields,
            rest: rest.to_vec(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.fields.iter().map(|f| f.raw.len()).sum::<usize>() + self.rest.len(),
        );
        for f in &self.fields {
            out.extend_from_slice(&f.raw);
            if !f.raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(&self.rest);
        out
    }

    /// The body, without the empty line before it.
    pub fn body(&self) -> &[u8] {
        let r = &self.rest;
        r.strip_prefix(b"\r\n")
            .or_else(|| r.strip_prefix(b"\n"))
            .unwrap_or(r)
    }

    /// Every value of a field, unfolded, without the leading blank.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value())
            .collect()
    }

    pub fn value(&self, name: &str) -> Option<String> {
        self.values(name).into_iter().next()
    }

    /// The names of the fields, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }

    /// Removes every field of this name; how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields.retain(|f| !f.name.eq_ignore_ascii_case(name));
        before - self.fields.len()
    }

    /// Removes the fields of this name whose value `drop` says to; how many.
    pub fn remove_where(&mut self, name: &str, drop: impl Fn(&str) -> bool) -> usize {
        let before = self.fields.len();
        self.fields
            .retain(|f| !(f.name.eq_ignore_ascii_case(name) && drop(&f.value())));
        before - self.fields.len()
    }

    /// Adds a field on top of the header block.
    pub fn prepend(&mut self, name: &str, value: &str) {
        self.fields.insert(0, Field::new(name, value));
    }

    /// Replaces the fields of this name with one, where the first was (on
    /// top when there was none).
    pub fn set(&mut self, name: &str, value: &str) {
        match self
            .fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))
        {
            Some(at) => {
                self.fields[at] = Field::new(&self.fields[at].name.clone(), value);
                let mut seen = false;
                self.fields.retain(|f| {
                    let same = f.name.eq_ignore_ascii_case(name);
                    let keep = !same || !seen;
                    seen |= same;
                    keep
                });
            }
            None => self.prepend(name, value),
        }
    }

    /// Rewrites the values of the fields of this name through `edit`; a
    /// field whose value `edit` leaves alone stays as it was written.
    pub fn edit(&mut self, name: &str, mut edit: impl FnMut(&str) -> Option<String>) -> usize {
        let mut changed = 0;
        for f in self
            .fields
            .iter_mut()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
        {
            if let Some(v) = edit(&f.value()) {
                *f = Field::new(&f.name.clone(), &v);
                changed += 1;
            }
        }
        changed
    }
}

impl Field {
    fn new(name: &str, value: &str) -> Field {
        // No value can add a line of its own.
        let value: String = value
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        Field {
            name: name.to_string(),
            raw: format!("{name}: {}\r\n", value.trim()).into_bytes(),
        }
    }

    fn value(&self) -> String {
        let colon = self
            .raw
            .iter()
            .position(|&b| b == b':')
            .map_or(self.raw.len(), |p| p + 1);
        let v = String::from_utf8_lossy(&self.raw[colon..]);
        v.replace("\r\n", "").replace('\n', "").trim().to_string()
    }
}

/// The header fields that carry addresses an address-rewriting agent
/// rewrites.
pub const ADDRESS_FIELDS: &[&str] = &[
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Bcc",
    "Resent-From",
    "Resent-Sender",
    "Resent-To",
    "Resent-Cc",
    "Return-Receipt-To",
    "Disposition-Notification-To",
];

/// Rewrites every address in an address-list value through `map`, leaving
/// display names, comments, quoted strings and group syntax as written.
/// None when no address changed.
pub fn rewrite_addresses(value: &str, map: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::with_capacity(value.len());
    let mut changed = false;
    let (mut i, mut quoted, mut comment) = (0, false, 0u32);
    let atom = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    while i < chars.len() {
        let c = chars[i];
        if quoted {
            out.push(c);
            match c {
                '\\' if i + 1 < chars.len() => {
                    out.push(chars[i + 1]);
                    i += 1;
                }
                '"' => quoted = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match c {
            '"' if comment == 0 => quoted = true,
            '(' => comment += 1,
            ')' => comment = comment.saturating_sub(1),
            '@' if comment == 0 => {
                // The addr-spec around this '@': atoms left and right.
                let mut start = out.len();
                let taken: Vec<char> = out.chars().collect();
                let mut k = taken.len();
                while k > 0 && atom(taken[k - 1]) {
                    k -= 1;
                }
                if k < taken.len() {
                    start = taken[..k].iter().map(|c| c.len_utf8()).sum();
                }
                let mut j = i + 1;
                while j < chars.len() && (atom(chars[j]) || chars[j] == '-') {
                    j += 1;
                }
                let local = out[start..].to_string();
                let domain: String = chars[i + 1..j].iter().collect();
                if !local.is_empty() && !domain.is_empty() {
                    let address = format!("{local}@{domain}");
                    if let Some(new) = map(&address) {
                        out.truncate(start);
                        out.push_str(&new);
                        changed = true;
                        i = j;
                        continue;
                    }
                }
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"Received: from a\r\n\tby b; Mon, 30 Nov 2026\r\nFrom: \"Mary (Sales)\" <mary@corp.contoso.test>\r\nTo: a@x.test,\r\n b@y.test\r\nSubject: hello\r\n\r\nbody line\r\n";

    #[test]
    fn untouched_fields_round_trip_byte_for_byte() {
        let m = Message::parse(MSG);
        assert_eq!(m.to_bytes(), MSG);
        assert_eq!(m.value("to").unwrap(), "a@x.test, b@y.test");
        assert_eq!(m.body(), b"body line\r\n");
        assert_eq!(m.names().count(), 4);
        let only_headers = Message::parse(b"Subject: x\r\n");
        assert_eq!(only_headers.to_bytes(), b"Subject: x\r\n");
        assert_eq!(only_headers.body(), b"");
    }

    #[test]
    fn set_remove_prepend_and_edit() {
        let mut m = Message::parse(MSG);
        m.set("subject", "[EXTERNAL] hello");
        m.prepend("X-Ferry-Organization-SCL", "5");
        assert_eq!(m.remove("received"), 1);
        m.set("X-New", "a\r\nInjected: yes");
        let out = String::from_utf8(m.to_bytes()).unwrap();
        assert!(out.starts_with("X-New: a  Injected: yes\r\nX-Ferry-Organization-SCL: 5\r\n"));
        assert!(out.contains("\r\nSubject: [EXTERNAL] hello\r\n\r\nbody line\r\n"));
        assert!(!out.contains("Received"));
        let n = m.edit("to", |v| Some(v.replace("a@x.test", "c@x.test")));
        assert_eq!(n, 1);
        assert_eq!(m.value("To").unwrap(), "c@x.test, b@y.test");
    }

    #[test]
    fn addresses_are_rewritten_and_display_names_kept() {
        let map = |a: &str| {
            a.strip_suffix("@corp.contoso.test")
                .map(|l| format!("{l}@contoso.test"))
        };
        assert_eq!(
            rewrite_addresses("\"Mary (Sales)\" <mary@corp.contoso.test>", &map).unwrap(),
            "\"Mary (Sales)\" <mary@contoso.test>"
        );
        assert_eq!(
            rewrite_addresses(
                "a@x.test, John <john.doe@corp.contoso.test> (john@corp.contoso.test)",
                &map
            )
            .unwrap(),
            "a@x.test, John <john.doe@contoso.test> (john@corp.contoso.test)"
        );
        assert_eq!(
            rewrite_addresses("team: bob@corp.contoso.test, eve@x.test;", &map).unwrap(),
            "team: bob@contoso.test, eve@x.test;"
        );
        assert_eq!(
            rewrite_addresses("\"x@corp.contoso.test\" <y@x.test>", &map),
            None
        );
        assert_eq!(rewrite_addresses("undisclosed-recipients:;", &map), None);
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A message whose last line ends is written back byte for byte
        /// when nothing is edited, whatever its header block holds.
        #[test]
        fn untouched_messages_round_trip(raw in "[ -~\t]{0,40}(\r\n[ -~\t]{0,40}){0,12}\r\n") {
            let m = Message::parse(raw.as_bytes());
            prop_assert_eq!(m.to_bytes(), raw.as_bytes().to_vec());
        }

        /// Address rewriting never panics, and changes nothing when no
        /// address maps.
        #[test]
        fn address_rewriting_is_total(value in "\\PC{0,80}") {
            prop_assert_eq!(rewrite_addresses(&value, &|_| None), None);
            let _ = rewrite_addresses(&value, &|a| Some(a.to_uppercase()));
        }
    }
}
