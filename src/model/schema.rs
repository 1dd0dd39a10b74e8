//! JSON Schema for fields whose rules are more than their Rust type: the
//! text of an SMTP reply, an e-mail address, an IP address. Fields name
//! these with `#[schema(schema_with = ...)]`; the API checks every body
//! against the document (`api::contract`), so a rule written here is
//! enforced as written, and the model's own check behind it must accept
//! everything these accept.

use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, SchemaType, Type};
use utoipa::openapi::{Object, ObjectBuilder, RefOr, Schema};

/// One DNS label: letters, digits, inner hyphens, at most 63.
const LABEL: &str = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";

fn string(nullable: bool) -> ObjectBuilder {
    let ty = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new().schema_type(ty)
}

/// An e-mail address `local@domain`: a dot-atom local part (RFC 5322
/// `atext` and dots, or any non-ASCII letter for SMTPUTF8) and a domain
/// of DNS labels. Quoted local parts are not taken in configuration.
pub fn email_address_pattern() -> String {
    format!(
        "^[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~.\\u00a0-\\ud7ff\\ue000-\\ufffd-]{{1,64}}@{LABEL}(?:\\.{LABEL})*$"
    )
}

pub fn email_address() -> Object {
    string(false)
        .pattern(Some(email_address_pattern()))
        .max_length(Some(254))
        .description(Some("An e-mail address, local@domain."))
        .examples([serde_json::json!("chris@contoso.com")])
        .build()
}

pub fn optional_email_address() -> Object {
    string(true)
        .pattern(Some(email_address_pattern()))
        .max_length(Some(254))
        .description(Some("An e-mail address, local@domain."))
        .build()
}

/// An AUTH identity: 1–256 characters, none of them a control character.
pub fn user_name() -> Object {
    string(false)
        .pattern(Some("^[^\\u0000-\\u001f\\u007f-\\u009f]+$"))
        .max_length(Some(256))
        .build()
}

pub fn email_addresses() -> RefOr<Schema> {
    ArrayBuilder::new().items(email_address()).into()
}

/// An ACME account's contact addresses: at most 8.
pub fn acme_contacts() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(email_address())
        .max_items(Some(8))
        .into()
}

/// An ACME directory: `https://host[:port][/path]`.
pub fn acme_directory_url() -> Object {
    string(false)
        .pattern(Some(format!(
            "^https://(?:{LABEL}(?:\\.{LABEL})*|{IPV4}|\\[{IPV6}\\])(?::{PORT})?(?:/[!\"$-~]*)?$"
        )))
        .max_length(Some(2000))
        .description(Some(
            "https://, a host name or address, an optional port and path (no fragment).",
        ))
        .build()
}

/// The text of an SMTP reply: printable ASCII on one line, 1–240.
fn reply_text_of(nullable: bool) -> Object {
    string(nullable)
        .pattern(Some("^[ -~]+$"))
        .min_length(Some(1))
        .max_length(Some(240))
        .description(Some(
            "SMTP reply text: 1–240 printable ASCII characters on one line.",
        ))
        .build()
}

pub fn reply_text() -> Object {
    reply_text_of(false)
}

pub fn optional_reply_text() -> Object {
    reply_text_of(true)
}

/// A header field name (RFC 5322 §2.2): 1–128 printable ASCII
/// characters other than ':'.
pub fn header_name() -> Object {
    string(true)
        .pattern(Some("^[!-9;-~]+$"))
        .max_length(Some(128))
        .description(Some(
            "A header field name: 1–128 printable ASCII characters other than ':'.",
        ))
        .build()
}

/// Text without control characters, `min` to `max` long: a header value,
/// a subject prefix, an event's text.
fn printable_text(min: usize, max: usize) -> Object {
    let body = "[^\\u0000-\\u001f\\u007f-\\u009f]";
    string(true)
        .pattern(Some(if min == 0 {
            format!("^{body}*$")
        } else {
            format!("^{body}+$")
        }))
        .max_length(Some(max))
        .description(Some(format!(
            "{min}–{max} characters, none of them a control character."
        )))
        .build()
}

pub fn header_value() -> Object {
    printable_text(0, 998)
}

pub fn subject_prefix() -> Object {
    printable_text(1, 256)
}

pub fn event_text() -> Object {
    printable_text(1, 512)
}

/// The enhanced status code a transport rule rejects with.
pub fn rejection_code() -> Object {
    string(true)
        .pattern(Some("^5\\.7\\.(?:1|9[0-9]{2})$"))
        .description(Some("5.7.1 or 5.7.900–5.7.999."))
        .build()
}

/// A name or word typed by an admin: 1–256 characters, no control
/// characters, not only spaces.
pub fn printable_name() -> Object {
    string(false)
        .pattern(Some(
            "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        ))
        .max_length(Some(256))
        .build()
}

/// An IPv4 address in dotted decimal, no leading zeros.
pub const IPV4: &str = "(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";

/// An IPv6 address in any of its RFC 4291 text forms but the one with an
/// embedded IPv4 address.
pub const IPV6: &str = "(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,7}:|(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,5}(?::[0-9A-Fa-f]{1,4}){1,2}|(?:[0-9A-Fa-f]{1,4}:){1,4}(?::[0-9A-Fa-f]{1,4}){1,3}|(?:[0-9A-Fa-f]{1,4}:){1,3}(?::[0-9A-Fa-f]{1,4}){1,4}|(?:[0-9A-Fa-f]{1,4}:){1,2}(?::[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(?::[0-9A-Fa-f]{1,4}){1,6}|:(?:(?::[0-9A-Fa-f]{1,4}){1,7}|:))";

/// An IP range as `IpRange` reads it: an address, `a-b` of one family, or
/// CIDR.
pub fn ip_range_pattern() -> String {
    format!(
        "^(?:{IPV4}(?:/(?:3[0-2]|[12]?[0-9])|-{IPV4})?|{IPV6}(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9])|-{IPV6})?)$"
    )
}

/// A domain name as `Domain` reads it (a final dot is allowed).
pub fn domain_pattern() -> String {
    format!("^{LABEL}(?:\\.{LABEL})*\\.?$")
}

/// `contoso.com` or `*.contoso.com`.
/// Where a webhook POSTs: `http(s)://host[:port][/path]`.
pub fn webhook_url() -> Object {
    string(false)
        .pattern(Some(format!(
            "^https?://(?:{LABEL}(?:\\.{LABEL})*|{IPV4}|\\[{IPV6}\\])(?::{PORT})?(?:/[!\"$-~]*)?$"
        )))
        .max_length(Some(2000))
        .description(Some(
            "http:// or https://, a host name or address, an optional port and path (no fragment).",
        ))
        .build()
}

/// A part of an address or name to match, 1–320 characters.
pub fn filter_text() -> Object {
    string(true)
        .pattern(Some("^[^\\u0000-\\u001f\\u007f-\\u009f]+$"))
        .max_length(Some(320))
        .build()
}

/// A domain name, whole (`contoso.com`).
pub fn domain_name() -> Object {
    string(false)
        .pattern(Some(domain_pattern()))
        .max_length(Some(253))
        .description(Some("A domain, e.g. contoso.com."))
        .build()
}

pub fn domain_or_wildcard_pattern() -> String {
    format!("^(?:\\*\\.)?{LABEL}(?:\\.{LABEL})*$")
}

/// A character a name may hold: none of the control characters, '/',
/// bidirectional controls or zero-width characters (`check_name`).
const NAME_CHAR: &str = "[^\\u0000-\\u001f\\u007f-\\u009f/\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]";
/// The same, and not a blank.
const NAME_EDGE: &str = "[^\\s\\u0000-\\u001f\\u007f-\\u009f/\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]";

/// What a configuration object is called by (`model::check_name`): 1–64
/// characters, no blanks at either end.
pub fn object_name() -> Object {
    string(false)
        .pattern(Some(format!("^{NAME_EDGE}(?:{NAME_CHAR}*{NAME_EDGE})?$")))
        .max_length(Some(64))
        .description(Some("1–64 characters without control, bidirectional or zero-width characters or '/', and no blanks at either end."))
        .build()
}

/// A TCP port, 1–65535.
const PORT: &str =
    "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";

/// A DNS server as `DnsServer` reads it: `ip`, `ip:port`, `[ipv6]:port`.
pub fn dns_server_pattern() -> String {
    format!("^(?:{IPV4}(?::{PORT})?|{IPV6}|\\[{IPV6}\\]:{PORT})$")
}

/// A mail store's `host:port`: a host name, an IPv4 address or a
/// bracketed IPv6 address, and a port.
pub fn host_port() -> Object {
    string(false)
        .pattern(Some(format!(
            "^(?:{LABEL}(?:\\.{LABEL})*|{IPV4}|\\[{IPV6}\\]):{PORT}$"
        )))
        .description(Some(
            "`host:port`, e.g. `127.0.0.1:24` or `store01.contoso.com:2525`.",
        ))
        .build()
}

/// rspamd's normal worker: `http://host:port`, an optional final slash.
pub fn scanner_url() -> Object {
    string(false)
        .pattern(Some(format!(
            "^http://(?:{LABEL}(?:\\.{LABEL})*|{IPV4}|\\[{IPV6}\\]):{PORT}/?$"
        )))
        .description(Some("rspamd's normal worker, `http://host:port`."))
        .build()
}

/// A certificate's friendly name: at most 128 characters, no control
/// characters; null for none.
pub fn friendly_name() -> Object {
    string(true)
        .pattern(Some("^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))
        .max_length(Some(128))
        .build()
}

/// An organisation's name in a report: 1–255 characters, not only blanks,
/// no control characters; null for the server's name.
pub fn org_name() -> Object {
    string(true)
        .pattern(Some(
            "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        ))
        .max_length(Some(255))
        .build()
}

/// A nullable list of `min`–`max` items.
fn list(item: impl Into<RefOr<Schema>>, min: usize, max: Option<usize>) -> RefOr<Schema> {
    use utoipa::openapi::schema::OneOfBuilder;
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .item(
            ArrayBuilder::new()
                .items(item.into())
                .min_items(Some(min))
                .max_items(max),
        )
        .into()
}

/// A transport rule's words or phrases: 1–100 of them.
pub fn rule_words() -> RefOr<Schema> {
    list(printable_name(), 1, Some(100))
}

/// A transport rule's patterns: 1–100, each 1–1024 characters (and a
/// regular expression the `regex` crate compiles, which no schema says).
pub fn rule_patterns() -> RefOr<Schema> {
    list(
        string(false).min_length(Some(1)).max_length(Some(1024)),
        1,
        Some(100),
    )
}

/// A transport rule's domains: at least one.
pub fn rule_domains() -> RefOr<Schema> {
    list(
        string(false)
            .pattern(Some(domain_pattern()))
            .max_length(Some(253)),
        1,
        None,
    )
}

/// A transport rule's addresses: at least one.
pub fn rule_addresses() -> RefOr<Schema> {
    list(email_address(), 1, None)
}

/// A transport rule action's addresses: 1–100.
pub fn rule_addresses_100() -> RefOr<Schema> {
    list(email_address(), 1, Some(100))
}

/// An IPv4 or IPv6 address, without brackets or port.
fn ip_address_of(nullable: bool) -> RefOr<Schema> {
    let mut b = AnyOfBuilder::new()
        .item(string(false).format(Some(utoipa::openapi::SchemaFormat::Custom("ipv4".into()))))
        .item(string(false).format(Some(utoipa::openapi::SchemaFormat::Custom("ipv6".into()))));
    if nullable {
        b = b.item(ObjectBuilder::new().schema_type(Type::Null));
    }
    b.description(Some("An IPv4 or IPv6 address.")).into()
}

pub fn ip_address() -> RefOr<Schema> {
    ip_address_of(false)
}

pub fn optional_ip_address() -> RefOr<Schema> {
    ip_address_of(true)
}

pub fn ipv4_addresses() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(string(false).format(Some(utoipa::openapi::SchemaFormat::Custom("ipv4".into()))))
        .min_items(Some(1))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_pattern_takes_what_the_model_takes_and_no_more() {
        let re = regex::Regex::new(&email_address_pattern()).unwrap();
        for ok in [
            "chris@contoso.com",
            "a.b+tag@mail.contoso.co.uk",
            "josé@contoso.com",
        ] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in [
            "",
            "chris",
            "@contoso.com",
            "a b@contoso.com",
            "a@-x.com",
            "a@x..com",
            "<a@x.com>",
        ] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }
}

/// The pattern of a timespan (`[d.]hh:mm:ss[.fffffff]`, as `Timespan`
/// writes it) between `lo` and `hi` seconds, both included: the fields are
/// walked from days to seconds the way a range of numbers is turned into a
/// regular expression, and a fraction is allowed below `hi` only.
pub fn timespan_pattern(lo: u64, hi: u64) -> String {
    let split = |t: u64| [t / 86400, t % 86400 / 3600, t % 3600 / 60, t % 60];
    format!("^(?:{})$", walk(0, Some(split(lo)), Some(split(hi))))
}

/// Field `i` onwards, at least `lo` and at most `hi` where given.
fn walk(i: usize, lo: Option<[u64; 4]>, hi: Option<[u64; 4]>) -> String {
    if i == 4 {
        // Past the seconds: a fraction, unless the value is `hi` itself.
        return if hi.is_some() {
            String::new()
        } else {
            "(?:\\.[0-9]{1,7})?".into()
        };
    }
    let max = [u64::MAX, 23, 59, 59][i];
    let a = lo.map_or(0, |l| l[i]);
    let b = hi.map_or(max, |h| h[i]);
    if a == b {
        return format!("{}{}", field(i, a, a), walk(i + 1, lo, hi));
    }
    let mut alts = vec![];
    let (mid_a, mid_b) = (
        if lo.is_some() { a + 1 } else { a },
        if hi.is_some() { b.saturating_sub(1) } else { b },
    );
    if lo.is_some() {
        alts.push(format!("{}{}", field(i, a, a), walk(i + 1, lo, None)));
    }
    if mid_a <= mid_b {
        alts.push(format!(
            "{}{}",
            field(i, mid_a, mid_b),
            walk(i + 1, None, None)
        ));
    }
    if hi.is_some() {
        alts.push(format!("{}{}", field(i, b, b), walk(i + 1, None, hi)));
    }
    format!("(?:{})", alts.join("|"))
}

/// Field `i` (days, hours, minutes, seconds) with a value from `a` to `b`.
fn field(i: usize, a: u64, b: u64) -> String {
    if i > 0 {
        let sep = if i < 3 { ":" } else { "" };
        let values: Vec<String> = (a..=b).map(|v| format!("{v:02}")).collect();
        return format!("(?:{}){sep}", values.join("|"));
    }
    // Days: none written for 0, else the number and a dot.
    let mut alts = vec![];
    if a == 0 {
        alts.push(String::new());
    }
    let a = a.max(1);
    if a <= b {
        if b == u64::MAX {
            alts.push("[1-9][0-9]{0,4}\\.".into());
        } else {
            alts.push(format!("(?:{})\\.", int_range(a, b)));
        }
    }
    format!("(?:{})", alts.join("|"))
}

/// A regular expression for the decimal numbers from `a` to `b` (no
/// leading zeros), split into runs of one length the usual way.
fn int_range(a: u64, b: u64) -> String {
    let mut alts = vec![];
    let mut lo = a;
    while lo <= b {
        let digits = lo.to_string().len() as u32;
        let top = 10u64.saturating_pow(digits).saturating_sub(1).min(b);
        alts.push(same_length(&lo.to_string(), &top.to_string()));
        if top == u64::MAX {
            break;
        }
        lo = top + 1;
    }
    alts.join("|")
}

/// Numbers of one length from `lo` to `hi`, digit by digit.
fn same_length(lo: &str, hi: &str) -> String {
    if lo == hi {
        return lo.to_string();
    }
    let (l0, h0) = (lo.as_bytes()[0] - b'0', hi.as_bytes()[0] - b'0');
    let n = lo.len() - 1;
    if n == 0 {
        return format!("[{l0}-{h0}]");
    }
    if l0 == h0 {
        return format!("{l0}(?:{})", same_length(&lo[1..], &hi[1..]));
    }
    let mut alts = vec![format!("{l0}(?:{})", same_length(&lo[1..], &"9".repeat(n)))];
    if l0 + 1 < h0 {
        alts.push(format!("[{}-{}][0-9]{{{n}}}", l0 + 1, h0 - 1));
    }
    alts.push(format!("{h0}(?:{})", same_length(&"0".repeat(n), &hi[1..])));
    alts.join("|")
}

/// A `Limit` from `min` to `max` (none: no maximum), or "unlimited".
pub fn limit(min: u64, max: Option<u64>) -> RefOr<Schema> {
    use utoipa::openapi::schema::OneOfBuilder;
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(min as f64))
                .maximum(max.map(|m| m as f64)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["unlimited"])),
        )
        .description(Some("A whole number, or \"unlimited\"."))
        .into()
}

macro_rules! limit_between {
    ($name:ident, $min:expr, $max:expr) => {
        pub fn $name() -> RefOr<Schema> {
            limit($min, $max)
        }
    };
}

limit_between!(limit_from_1, 1, Some(2_147_483_647));
limit_between!(limit_from_0, 0, Some(2_147_483_647));
limit_between!(limit_from_1kib, 1024, Some(i64::MAX as u64));
limit_between!(limit_from_1mib, 1024 * 1024, None);

/// A list of domain names.
pub fn domains() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(
            string(false)
                .pattern(Some(domain_pattern()))
                .max_length(Some(253)),
        )
        .into()
}

/// The authserv-id of Authentication-Results (RFC 8601): printable ASCII
/// without blanks or ';', at most 255; null for the server's FQDN.
pub fn authserv_id() -> Object {
    string(true)
        .pattern(Some("^[!-:<-~]+$"))
        .max_length(Some(255))
        .build()
}

/// A list of domains, each may be `*.domain`.
pub fn domains_or_wildcards() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(
            string(false)
                .pattern(Some(domain_or_wildcard_pattern()))
                .max_length(Some(255)),
        )
        .into()
}

/// Declares a schema function for a timespan between two bounds.
macro_rules! timespan_between {
    ($name:ident, $lo:expr, $hi:expr) => {
        pub fn $name() -> Object {
            string(false)
                .pattern(Some(timespan_pattern($lo, $hi)))
                .description(Some(format!(
                    "A timespan [d.]hh:mm:ss from {} to {}.",
                    crate::model::Timespan::from_secs($lo),
                    crate::model::Timespan::from_secs($hi)
                )))
                .build()
        }
    };
}

timespan_between!(timespan_1s_30s, 1, 30);
timespan_between!(timespan_1s_300s, 1, 300);
timespan_between!(timespan_1s_1h, 1, 3600);
timespan_between!(timespan_1s_12h, 1, 12 * 3600);
timespan_between!(timespan_1s_1d, 1, 86400);
timespan_between!(timespan_1s_20d, 1, 20 * 86400);
timespan_between!(timespan_1s_90d, 1, 90 * 86400);
timespan_between!(timespan_5s_90d, 5, 90 * 86400);
timespan_between!(timespan_0_24855d, 0, 24855 * 86400);

/// Any timespan as `Timespan` reads it, in the form it writes.
pub fn timespan_any_pattern() -> String {
    "^(?:[1-9][0-9]{0,4}\\.)?(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,7})?$".into()
}

#[cfg(test)]
mod timespan_tests {
    use super::*;

    #[test]
    fn integer_ranges() {
        for (a, b) in [(1, 1), (1, 9), (0, 90), (7, 24855), (95, 1203), (10, 99)] {
            let re = regex::Regex::new(&format!("^(?:{})$", int_range(a, b))).unwrap();
            for n in 0..30000u64 {
                assert_eq!(
                    re.is_match(&n.to_string()),
                    (a..=b).contains(&n),
                    "{n} in {a}..={b}"
                );
            }
        }
    }

    #[test]
    fn the_timespan_range_pattern_takes_exactly_the_range() {
        for (lo, hi) in [
            (1, 30),
            (5, 90 * 86400),
            (0, 86400),
            (60, 12 * 3600),
            (3600, 3600),
            (0, 24855 * 86400),
        ] {
            let re = regex::Regex::new(&timespan_pattern(lo, hi)).unwrap();
            // Every whole second in and around a sample of the range.
            let mut samples: Vec<u64> = (lo.saturating_sub(70)..lo + 70).collect();
            samples.extend(hi.saturating_sub(70)..hi + 70);
            samples.extend((0..200).map(|k| lo + (hi - lo) * k / 200));
            for t in samples {
                let text = crate::model::Timespan::from_secs(t).to_string();
                assert_eq!(
                    re.is_match(&text),
                    (lo..=hi).contains(&t),
                    "{text} in {lo}..={hi}"
                );
                let frac = format!("{text}.5");
                assert_eq!(
                    re.is_match(&frac),
                    (lo..hi).contains(&t),
                    "{frac} in {lo}..={hi}"
                );
            }
        }
    }
}
