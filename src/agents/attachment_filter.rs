//! The Attachment Filter agent: at the end of data, every part of the
//! message — nested multiparts and attached `message/rfc822` messages
//! included, parsed by `mail-parser` — is checked against the entries by
//! its file name (RFC 2231 and RFC 2047 encodings decoded) and its content
//! type.
//!
//! The rule for malformed MIME: whatever mail-parser can read is checked
//! part by part; a message it cannot read as MIME at all is treated as
//! carrying an unwanted attachment (it is never let through unchecked), and
//! since nothing can be stripped from it, Strip refuses it like Reject.

use mail_parser::{MessageParser, MimeHeaders, PartType};

use crate::model::attachment_filter::AttachmentFilterConfig;

/// An unwanted part: its bytes in the raw message (headers to end) and
/// what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwanted {
    pub start: usize,
    pub end: usize,
    /// `setup.exe (FileName:*.exe)`
    pub what: String,
    /// The message itself is the attachment (a single-part message): there
    /// is nothing to keep if it is stripped.
    pub whole_message: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    Clean,
    Unwanted(Vec<Unwanted>),
    /// Not readable as MIME at all.
    Unreadable,
}

/// The quick look at the header block alone: a message whose top-level
/// content type is neither multipart nor message holds no other part, so
/// its header block decides (Some); otherwise the whole message must be
/// walked (None).
pub fn single_part(headers: &[u8], config: &AttachmentFilterConfig) -> Option<Scan> {
    let mut block = headers.to_vec();
    while block.ends_with(b"\r\n") || block.ends_with(b"\n") {
        block.pop();
    }
    block.extend_from_slice(b"\r\n\r\n");
    let message = MessageParser::default().parse(&block[..])?;
    let part = message.parts.first()?;
    let ct = part.content_type();
    let c_type = ct
        .map(|c| c.c_type.to_ascii_lowercase())
        .unwrap_or_default();
    if c_type == "multipart" || c_type == "message" {
        return None;
    }
    let content_type = ct
        .map(|c| match &c.c_subtype {
            Some(sub) => format!("{}/{}", c.c_type, sub),
            None => c.c_type.to_string(),
        })
        .unwrap_or_else(|| "text/plain".into())
        .to_ascii_lowercase();
    let name = part.attachment_name();
    Some(match config.unwanted(name, &content_type) {
        None => Scan::Clean,
        Some(entry) => Scan::Unwanted(vec![Unwanted {
            start: 0,
            end: 0,
            what: format!(
                "{} ({})",
                name.unwrap_or(content_type.as_str()),
                entry.identity()
            ),
            whole_message: true,
        }]),
    })
}

/// Checks every part of `raw` against the entries.
pub fn scan(raw: &[u8], config: &AttachmentFilterConfig) -> Scan {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Scan::Unreadable;
    };
    let mut found = vec![];
    walk(&message, config, &mut found, 0);
    if found.is_empty() {
        Scan::Clean
    } else {
        Scan::Unwanted(found)
    }
}

fn walk(
    message: &mail_parser::Message<'_>,
    config: &AttachmentFilterConfig,
    found: &mut Vec<Unwanted>,
    depth: usize,
) {
    for (i, part) in message.parts.iter().enumerate() {
        // The top-level part of a message is its own header block: only a
        // single-part message whose body is the attachment is checked there.
        if matches!(part.body, PartType::Multipart(_)) {
            continue;
        }
        let content_type = part
            .content_type()
            .map(|c| match &c.c_subtype {
                Some(sub) => format!("{}/{}", c.c_type, sub),
                None => c.c_type.to_string(),
            })
            .unwrap_or_else(|| "text/plain".into())
            .to_ascii_lowercase();
        let name = part.attachment_name();
        if let Some(entry) = config.unwanted(name, &content_type) {
            let (start, end) = if i == 0 {
                (part.offset_body as usize, part.offset_end as usize)
            } else {
                (part.offset_header as usize, part.offset_end as usize)
            };
            found.push(Unwanted {
                start,
                end,
                whole_message: i == 0 && depth == 0,
                what: format!(
                    "{} ({})",
                    name.unwrap_or(content_type.as_str()),
                    entry.identity()
                ),
            });
            continue;
        }
        // A bounded depth: a message nested a thousand times is not walked
        // a thousand deep (what is below is refused as unreadable instead).
        if let PartType::Message(nested) = &part.body {
            if depth >= 16 {
                found.push(Unwanted {
                    start: part.offset_header as usize,
                    end: part.offset_end as usize,
                    what: "messages nested more than 16 deep".into(),
                    whole_message: false,
                });
            } else {
                walk(nested, config, found, depth + 1);
            }
        }
    }
}

/// What the Edge Rule agent reads of a message's content: the text of its
/// text parts (HTML as written), up to `limit` bytes, and the file names
/// of its attachments, nested messages included (16 deep at most).
pub fn body_facts(raw: &[u8], limit: usize) -> (String, Vec<String>) {
    fn walk(
        m: &mail_parser::Message<'_>,
        text: &mut String,
        names: &mut Vec<String>,
        limit: usize,
        depth: usize,
    ) {
        for part in m.parts.iter() {
            if let Some(n) = part.attachment_name() {
                names.push(n.to_string());
            }
            match &part.body {
                PartType::Text(t) | PartType::Html(t) if text.len() < limit => {
                    text.push_str(t);
                    text.push('\n');
                }
                PartType::Message(nested) if depth < 16 => {
                    walk(nested, text, names, limit, depth + 1)
                }
                _ => {}
            }
        }
    }
    let (mut text, mut names) = (String::new(), vec![]);
    if let Some(m) = MessageParser::default().parse(raw) {
        walk(&m, &mut text, &mut names, limit, 0);
    }
    (text, names)
}

/// The message with each unwanted part replaced by a text part saying
/// what was removed (Exchange's Strip).
pub fn strip(raw: &[u8], unwanted: &[Unwanted], admin_message: &str) -> Vec<u8> {
    let mut parts: Vec<&Unwanted> = unwanted.iter().collect();
    parts.sort_by_key(|u| u.start);
    let mut out = Vec::with_capacity(raw.len());
    let mut pos = 0;
    for u in parts {
        if u.start < pos || u.end > raw.len() || u.start > u.end {
            continue;
        }
        out.extend_from_slice(&raw[pos..u.start]);
        out.extend_from_slice(
            format!(
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\
                 Content-Disposition: inline\r\n\r\n{admin_message} ({})\r\n",
                u.what
            )
            .as_bytes(),
        );
        pos = u.end;
    }
    out.extend_from_slice(&raw[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AttachmentFilterConfig {
        AttachmentFilterConfig::defaults()
    }

    fn names(s: Scan) -> Vec<String> {
        match s {
            Scan::Unwanted(u) => u.into_iter().map(|u| u.what).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_exe_deep_in_nested_multiparts_and_an_attached_message_is_found() {
        let raw = b"From: a@b.test\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n\
--outer\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n\
--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n\
--inner\r\nContent-Type: application/octet-stream; name=\"tool.exe\"\r\nContent-Disposition: attachment; filename=\"tool.exe\"\r\n\r\nMZ\r\n\
--inner--\r\n\
--outer\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@d.test\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=deep\r\n\r\n\
--deep\r\nContent-Type: text/plain\r\n\r\nx\r\n\
--deep\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.scr\r\n\r\nMZ\r\n\
--deep--\r\n\
--outer--\r\n";
        let found = names(scan(raw, &config()));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("tool.exe (FileName:*.exe)"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("résumé.scr (FileName:*.scr)"),
            "{found:?}"
        );
    }

    #[test]
    fn encoded_names_and_content_types_are_checked_and_clean_mail_passes() {
        let raw = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"=?UTF-8?B?aW52b2ljZS5qcw==?=\"\r\n\r\n%PDF\r\n\
--b\r\nContent-Type: application/x-msdownload\r\n\r\nMZ\r\n\
--b--\r\n";
        let found = names(scan(raw, &config()));
        assert!(
            found[0].starts_with("invoice.js (FileName:*.js)"),
            "{found:?}"
        );
        assert!(
            found[1].contains("ContentType:application/x-msdownload"),
            "{found:?}"
        );
        let clean = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=report.pdf\r\n\r\n%PDF\r\n--b--\r\n";
        assert_eq!(scan(clean, &config()), Scan::Clean);
    }

    #[test]
    fn a_single_part_message_is_decided_by_its_headers() {
        let c = config();
        assert_eq!(single_part(b"Subject: hi\r\n\r\n", &c), Some(Scan::Clean));
        assert_eq!(
            single_part(
                b"Subject: hi\r\nContent-Type: text/plain; charset=utf-8\r\n",
                &c
            ),
            Some(Scan::Clean)
        );
        assert!(matches!(
            single_part(b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=x.exe\r\n\r\n", &c),
            Some(Scan::Unwanted(u)) if u[0].whole_message
        ));
        assert_eq!(
            single_part(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n", &c),
            None
        );
        assert_eq!(
            single_part(b"Content-Type: message/rfc822\r\n\r\n", &c),
            None
        );
    }

    #[test]
    fn broken_mime_is_still_checked_part_by_part() {
        // No closing boundary, a boundary that never appears, garbage.
        let unclosed = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/octet-stream; name=a.exe\r\n\r\nMZ";
        assert!(matches!(scan(unclosed, &config()), Scan::Unwanted(_)));
        let missing = b"Content-Type: multipart/mixed; boundary=nowhere\r\n\r\nplain text only\r\n";
        assert_eq!(scan(missing, &config()), Scan::Clean);
        let _ = scan(&[0xff, 0xfe, 0x00, b'\r', b'\n'], &config());
    }
}

#[cfg(test)]
mod strip_tests {
    use super::*;

    #[test]
    fn stripping_keeps_the_rest_of_the_message_readable() {
        let raw = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nkeep me\r\n\
--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=a.exe\r\n\r\nMZ-payload\r\n\
--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=r.pdf\r\n\r\n%PDF\r\n\
--b--\r\n";
        let cfg = AttachmentFilterConfig::defaults();
        let Scan::Unwanted(found) = scan(raw, &cfg) else {
            panic!("the exe is found")
        };
        let out = strip(raw, &found, "This attachment was removed.");
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("MZ-payload"), "{text}");
        assert!(
            text.contains("This attachment was removed. (a.exe (FileName:*.exe))"),
            "{text}"
        );
        assert!(text.contains("keep me") && text.contains("%PDF"), "{text}");
        // Still a well-formed multipart: three parts, none unwanted.
        assert_eq!(scan(&out, &cfg), Scan::Clean);
        let m = MessageParser::default().parse(&out[..]).unwrap();
        assert_eq!(m.parts.len(), 4, "{text}");
    }
}

#[cfg(test)]
mod fuzz {
    //! Malformed MIME, generated: the agent never panics, and an unwanted
    //! attachment whose own part is intact is never let through whatever
    //! is done to the rest (junk lines, lost closing boundaries, cut-off
    //! bodies, stray boundaries in the text).
    use super::*;
    use proptest::prelude::*;

    const HEAD: &str =
        "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n";
    const TEXT: &str = "--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n";
    const EXE: &str = "--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"setup.exe\"\r\n\r\nMZ\r\n";

    fn junk() -> impl Strategy<Value = String> {
        // Lines that are not boundaries of the outer multipart.
        proptest::collection::vec("[ -~]{0,40}", 0..6).prop_map(|lines| {
            lines
                .into_iter()
                .filter(|l| !l.starts_with("--b1"))
                .map(|l| l + "\r\n")
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let cfg = AttachmentFilterConfig::defaults();
            let _ = scan(&raw, &cfg);
            let mut head = raw.clone();
            head.truncate(512);
            let _ = single_part(&head, &cfg);
            let _ = body_facts(&raw, 1024);
        }

        #[test]
        fn mutated_mime_never_panics(
            flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..8),
            cut in 0usize..400,
        ) {
            let mut raw = format!("{HEAD}{TEXT}{EXE}--b1--\r\n").into_bytes();
            for (at, b) in flips {
                let at = at % raw.len();
                raw[at] = b;
            }
            raw.truncate(cut.max(1).min(raw.len()));
            let cfg = AttachmentFilterConfig::defaults();
            if let Scan::Unwanted(found) = scan(&raw, &cfg) {
                let _ = strip(&raw, &found, "removed");
            }
        }

        #[test]
        fn an_intact_exe_part_is_never_missed(
            preamble in junk(),
            in_text in junk(),
            after in junk(),
            close in any::<bool>(),
            cut in 0usize..4,
        ) {
            let mut msg = format!("{HEAD}{preamble}{TEXT}{in_text}{EXE}{after}");
            if close {
                msg.push_str("--b1--\r\n");
            }
            // A cut-off body of the attachment itself.
            if cut > 0 && !close && after.is_empty() {
                msg.truncate(msg.len() - cut);
            }
            let cfg = AttachmentFilterConfig::defaults();
            prop_assert!(
                !matches!(scan(msg.as_bytes(), &cfg), Scan::Clean),
                "let through: {msg:?}"
            );
        }
    }
}
