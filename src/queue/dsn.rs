//! Delivery status notifications (RFC 3464): NDRs for failed recipients,
//! delay notices, and the success notices RFC 3461's `NOTIFY=SUCCESS` asks
//! for (delivered into a mailbox, or relayed to a next hop that does not
//! take DSN requests), as a multipart/report from the postmaster address
//! with the original attached (headers only past the size limit, spec rule
//! 25, for `RET=HDRS`, and in success notices).

use crate::model::address::{mailbox, path};
use crate::smtp::server::session::rfc5322_now;

/// One recipient's line in the report.
pub struct Failed<'a> {
    pub recipient: &'a str,
    /// The reply or error text, e.g. `550 5.1.1 User unknown`.
    pub diagnostic: &'a str,
    pub remote_host: Option<&'a str>,
    /// RFC 3461 ORCPT, as the client gave it (decoded).
    pub orcpt: Option<&'a str>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Failure,
    Delay,
    /// Delivered into a mailbox (`NOTIFY=SUCCESS`).
    Delivered,
    /// Handed to a next hop that does not take DSN requests, which will
    /// send no notice of its own (`NOTIFY=SUCCESS`, RFC 3461 §5.2.2).
    Relayed,
}

/// RFC 3461's request of a message: its ENVID and whether only the
/// headers are to be returned (`RET=HDRS`).
#[derive(Clone, Copy, Default)]
pub struct Request<'a> {
    pub env_id: Option<&'a str>,
    pub headers_only: bool,
}

/// The RFC 3463 status in a diagnostic, or one derived from its class.
pub fn status_of(diagnostic: &str, kind: Kind) -> String {
    let words: Vec<&str> = diagnostic.split_whitespace().collect();
    for w in words.iter().take(3) {
        let parts: Vec<&str> = w.split('.').collect();
        if parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && matches!(parts[0], "2" | "4" | "5")
        {
            return w.to_string();
        }
    }
    match kind {
        Kind::Delay => "4.0.0".into(),
        Kind::Failure => "5.0.0".into(),
        Kind::Delivered | Kind::Relayed => "2.0.0".into(),
    }
}

fn header_block(original: &[u8]) -> &[u8] {
    let end = original
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(original.len());
    &original[..end]
}

fn subject_of(original: &[u8]) -> String {
    let headers = String::from_utf8_lossy(header_block(original)).into_owned();
    headers
        .split("\r\n")
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("subject")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default()
}

/// Builds the report. `attach_limit` bounds the attached original.
#[allow(clippy::too_many_arguments)]
pub fn build(
    kind: Kind,
    postmaster: &str,
    reporting_mta: &str,
    to: &str,
    arrival: &str,
    original_message_id: &str,
    failed: &[Failed<'_>],
    original: &[u8],
    attach_limit: u64,
    request: Request<'_>,
) -> Vec<u8> {
    let boundary = format!("ferry-dsn-{}", uuid::Uuid::new_v4().simple());
    let subject = subject_of(original);
    let (title, human) = match kind {
        Kind::Failure => (
            format!("Undeliverable: {subject}"),
            "Delivery has failed to these recipients or groups:",
        ),
        Kind::Delay => (
            format!("Delivery delayed: {subject}"),
            "Delivery to these recipients or groups is delayed. Ferry will keep trying; you do not need to resend:",
        ),
        Kind::Delivered => (
            format!("Delivered: {subject}"),
            "Your message has been delivered to these recipients:",
        ),
        Kind::Relayed => (
            format!("Relayed: {subject}"),
            "Your message was handed to a server that does not send delivery notifications; no further notice will come for these recipients:",
        ),
    };
    let mut m = String::new();
    m.push_str(&format!(
        "From: Mail Delivery System {}\r\n",
        path(postmaster)
    ));
    m.push_str(&format!("To: {}\r\n", path(to)));
    m.push_str(&format!(
        "Subject: {}\r\n",
        title.replace(['\r', '\n'], " ")
    ));
    m.push_str(&format!("Date: {}\r\n", rfc5322_now()));
    m.push_str(&format!(
        "Message-ID: <{}@{reporting_mta}>\r\n",
        uuid::Uuid::new_v4().simple()
    ));
    if !original_message_id.is_empty() {
        m.push_str(&format!(
            "In-Reply-To: {original_message_id}\r\nReferences: {original_message_id}\r\n"
        ));
    }
    m.push_str("Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{human}\r\n\r\n"
    ));
    for f in failed {
        m.push_str(&format!("{}\r\n", mailbox(f.recipient)));
    }
    m.push_str(&format!("\r\nDiagnostic information for administrators:\r\n\r\nGenerating server: {reporting_mta}\r\n\r\n"));
    for f in failed {
        m.push_str(&format!("{}\r\n", mailbox(f.recipient)));
        match f.remote_host {
            Some(h) => m.push_str(&format!(
                "Remote server {h} returned '{}'\r\n\r\n",
                f.diagnostic
            )),
            None => m.push_str(&format!("{}\r\n\r\n", f.diagnostic)),
        }
    }
    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
    ));
    m.push_str(&format!("Reporting-MTA: dns; {reporting_mta}\r\n"));
    if let Some(id) = request.env_id {
        m.push_str(&format!(
            "Original-Envelope-Id: {}\r\n",
            id.replace(['\r', '\n'], "")
        ));
    }
    m.push_str(&format!("Arrival-Date: {arrival}\r\n"));
    for f in failed {
        m.push_str("\r\n");
        if let Some(o) = f.orcpt {
            m.push_str(&format!(
                "Original-Recipient: rfc822; {}\r\n",
                o.replace(['\r', '\n'], "")
            ));
        }
        m.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            mailbox(f.recipient)
        ));
        m.push_str(&format!(
            "Action: {}\r\nStatus: {}\r\n",
            match kind {
                Kind::Failure => "failed",
                Kind::Delay => "delayed",
                Kind::Delivered => "delivered",
                Kind::Relayed => "relayed",
            },
            status_of(f.diagnostic, kind)
        ));
        if let Some(h) = f.remote_host {
            m.push_str(&format!("Remote-MTA: dns; {h}\r\n"));
        }
        m.push_str(&format!(
            "Diagnostic-Code: smtp; {}\r\n",
            f.diagnostic.replace(['\r', '\n'], " ")
        ));
    }
    let mut out = m.into_bytes();
    let whole = !request.headers_only && matches!(kind, Kind::Failure | Kind::Delay);
    if whole && original.len() as u64 <= attach_limit {
        out.extend_from_slice(
            format!("\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(original);
    } else {
        out.extend_from_slice(
            format!("\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(header_block(original));
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_the_three_parts() {
        let orig = b"Subject: hello\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n";
        let f = [Failed {
            recipient: "carol@fabrikam.test",
            diagnostic: "550 5.1.1 User unknown",
            remote_host: Some("mx1.fabrikam.test"),
            orcpt: None,
        }];
        let dsn = String::from_utf8(build(
            Kind::Failure,
            "postmaster@contoso.test",
            "edge01.contoso.test",
            "bob@contoso.test",
            "Fri, 27 Nov 2026 10:00:00 +0000",
            "<a@b>",
            &f,
            orig,
            1000,
            Request::default(),
        ))
        .unwrap();
        assert!(dsn.contains("Subject: Undeliverable: hello"));
        assert!(dsn.contains("report-type=delivery-status"));
        assert!(dsn.contains(
            "Final-Recipient: rfc822; carol@fabrikam.test\r\nAction: failed\r\nStatus: 5.1.1"
        ));
        assert!(dsn.contains("Remote server mx1.fabrikam.test returned '550 5.1.1 User unknown'"));
        assert!(dsn.contains("Content-Type: message/rfc822\r\n\r\nSubject: hello"));
        let small = String::from_utf8(build(
            Kind::Failure,
            "p@x",
            "x",
            "b@x",
            "d",
            "",
            &f,
            orig,
            10,
            Request::default(),
        ))
        .unwrap();
        assert!(small.contains("text/rfc822-headers") && !small.contains("body\r\n--"));
    }

    #[test]
    fn rfc_3461_fields_and_ret_hdrs() {
        let orig = b"Subject: hello\r\n\r\nbody\r\n";
        let f = [Failed {
            recipient: "carol@fabrikam.test",
            diagnostic: "250 2.0.0 Ok: queued as 123",
            remote_host: Some("mx1.fabrikam.test"),
            orcpt: Some("Carol@Fabrikam.test"),
        }];
        let request = Request {
            env_id: Some("QQ314159"),
            headers_only: true,
        };
        let relayed = String::from_utf8(build(
            Kind::Relayed,
            "p@x",
            "x",
            "b@x",
            "d",
            "",
            &f,
            orig,
            1000,
            request,
        ))
        .unwrap();
        assert!(relayed.contains("Subject: Relayed: hello"));
        assert!(relayed.contains("Reporting-MTA: dns; x\r\nOriginal-Envelope-Id: QQ314159\r\n"));
        assert!(relayed.contains(
            "Original-Recipient: rfc822; Carol@Fabrikam.test\r\nFinal-Recipient: rfc822; carol@fabrikam.test\r\nAction: relayed\r\nStatus: 2.0.0"
        ));
        assert!(relayed.contains("text/rfc822-headers") && !relayed.contains("body\r\n"));
        // RET=HDRS: a failure notice returns only the headers too.
        let failed = String::from_utf8(build(
            Kind::Failure,
            "p@x",
            "x",
            "b@x",
            "d",
            "",
            &f,
            orig,
            1000,
            request,
        ))
        .unwrap();
        assert!(failed.contains("text/rfc822-headers") && !failed.contains("body\r\n"));
    }

    #[test]
    fn status_codes() {
        assert_eq!(status_of("550 5.1.1 User unknown", Kind::Failure), "5.1.1");
        assert_eq!(
            status_of("550 4.4.7 QUEUE.Expired; message expired", Kind::Failure),
            "4.4.7"
        );
        assert_eq!(status_of("connection refused", Kind::Delay), "4.0.0");
    }
}
