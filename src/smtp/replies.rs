//! The catalogue of SMTP replies: code, enhanced status code (RFC 3463) and
//! text. Texts follow Exchange's (spec §2.2, [RESP]) so that admins and
//! scripts recognise them; tests assert on these constants, not on copies.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code, sent when ENHANCEDSTATUSCODES is enabled.
    pub status: &'static str,
    pub text: Cow<'static, str>,
}

macro_rules! replies {
    ($($name:ident = $code:literal $status:literal $text:literal;)*) => {
        $(pub const $name: Reply = Reply { code: $code, status: $status, text: Cow::Borrowed($text) };)*
    };
}

replies! {
    // Connection and session
    SERVICE_NOT_AVAILABLE = 421 "4.3.2" "Service not available";
    TOO_MANY_CONNECTIONS = 421 "4.3.2" "The maximum number of concurrent server connections has exceeded a limit, closing transmission channel";
    TOO_MANY_FROM_SOURCE = 421 "4.3.2" "The maximum number of concurrent connections has exceeded a limit, closing transmission channel";
    SHUTTING_DOWN = 421 "4.3.2" "Service shutting down";
    DRAINING = 421 "4.3.2" "Service not available, this server is being drained";
    PROXY_REFUSED = 554 "5.7.0" "PROXY protocol headers are accepted only from a listed load balancer, closing transmission channel";
    INACTIVITY_TIMEOUT = 451 "4.7.0" "Timeout waiting for client input";
    CONNECTION_TIMEOUT = 421 "4.4.1" "Connection timed out";
    TOO_MANY_ERRORS = 421 "4.7.0" "Too many errors on this connection, closing transmission channel";
    RATE_LIMITED = 421 "4.4.2" "Message submission rate for this client has exceeded the configured limit";
    QUIT = 221 "2.0.0" "Service closing transmission channel";
    NOOP = 250 "2.0.0" "OK";
    RESET = 250 "2.0.0" "Resetting";
    VRFY = 252 "2.1.5" "Cannot VRFY user";
    HELP = 214 "2.0.0" "This server supports the following commands: HELO EHLO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT";
    // Syntax and sequence
    UNRECOGNIZED = 500 "5.3.3" "Unrecognized command";
    LINE_TOO_LONG = 500 "5.5.2" "Line too long";
    SYNTAX = 501 "5.5.4" "Invalid arguments";
    CONTROL_CHARACTERS = 501 "5.5.4" "Control characters are not allowed in commands";
    BAD_HELO = 501 "5.5.4" "Invalid domain name: EHLO and HELO take a domain or address literal in printable ASCII";
    BAD_SENDER = 501 "5.1.7" "Invalid address";
    BAD_RECIPIENT = 501 "5.1.3" "Invalid address";
    HELLO_FIRST = 503 "5.5.1" "Send hello first";
    SENDER_ALREADY = 503 "5.5.2" "Sender already specified";
    NEED_MAIL = 503 "5.5.1" "Need mail command";
    NEED_RCPT = 503 "5.5.1" "Need rcpt command";
    BINARYMIME_NEEDS_BDAT = 503 "5.5.1" "BINARYMIME requires BDAT";
    BDAT_NOT_ENABLED = 503 "5.5.1" "BDAT is not enabled";
    NON_ASCII_NEEDS_SMTPUTF8 = 553 "5.6.7" "Non-ASCII addresses require the SMTPUTF8 option";
    // Rights (spec rule 9)
    NOT_AUTHENTICATED = 530 "5.7.1" "Client was not authenticated";
    NO_SUBMIT = 550 "5.7.1" "Client does not have permissions to submit to this server";
    NO_SEND_AS = 550 "5.7.1" "Client does not have permissions to send as this sender";
    UNABLE_TO_RELAY = 550 "5.7.1" "Unable to relay";
    UNTRUSTED_ROUTING = 550 "5.7.1" "Sender-specified routing (%, ! or @ in the local part) is not allowed for this client";
    // Anti-spam agents (Exchange's texts)
    SENDER_DENIED = 554 "5.1.0" "Sender Denied";
    RECIPIENT_BLOCKED = 550 "5.7.1" "Recipient not authorized";
    RECIPIENT_NOT_FOUND = 550 "5.1.10" "RESOLVER.ADR.RecipientNotFound; not found";
    DIRECTORY_UNAVAILABLE = 450 "4.1.1" "Recipient address could not be verified now; try again later";
    TOO_MANY_UNKNOWN_RECIPIENTS = 421 "4.7.0" "Too many unknown recipients, closing transmission channel";
    // Limits
    TOO_MANY_RECIPIENTS = 452 "4.5.3" "Too many recipients";
    INSUFFICIENT_RESOURCES = 452 "4.3.1" "Insufficient system resources";
    SIZE_EXCEEDED = 552 "5.3.4" "Message size exceeds fixed maximum message size";
    HEADER_TOO_BIG = 552 "5.3.4" "Header size exceeds fixed maximum size";
    HOP_COUNT = 554 "5.4.6" "Hop count exceeded - possible mail loop";
    // Acceptance
    SENDER_OK = 250 "2.1.0" "Sender OK";
    RECIPIENT_OK = 250 "2.1.5" "Recipient OK";
    START_DATA = 354 "" "Start mail input; end with <CRLF>.<CRLF>";
    QUEUE_FAILED = 451 "4.3.0" "Mail server temporarily rejected message";
    // TLS and AUTH (spec rule 10)
    TLS_READY = 220 "2.0.0" "SMTP server ready";
    TLS_UNAVAILABLE = 454 "4.7.0" "TLS not available due to temporary reason";
    TLS_ALREADY = 503 "5.5.2" "Only one STARTTLS command can be issued per session";
    MUST_STARTTLS = 530 "5.7.0" "Must issue a STARTTLS command first";
    AUTH_OK = 235 "2.7.0" "Authentication successful";
    AUTH_FAILED = 535 "5.7.3" "Authentication unsuccessful";
    AUTH_TEMPORARY = 454 "4.7.0" "Temporary authentication failure";
    AUTH_LOCKED_OUT = 454 "4.7.0" "Temporary authentication failure: too many failed logins from this address, try again later";
    AUTH_UNKNOWN_MECHANISM = 504 "5.7.4" "Unrecognized authentication type";
    AUTH_ALREADY = 503 "5.5.2" "Already authenticated";
    AUTH_ABORTED = 501 "5.0.0" "Authentication aborted";
    AUTH_IN_TRANSACTION = 503 "5.5.1" "AUTH is not allowed during a mail transaction";
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            code,
            status,
            text: text.into(),
        }
    }

    /// `250 2.6.0 <message-id> [InternalId=N] Queued mail for delivery`
    pub fn queued(message_id: &str, internal_id: i64) -> Reply {
        Reply::new(
            250,
            "2.6.0",
            format!("{message_id} [InternalId={internal_id}] Queued mail for delivery"),
        )
    }

    pub fn unsupported_parameter(param: &str) -> Reply {
        Reply::new(555, "5.5.4", format!("Unsupported option: {param}"))
    }

    /// A 4xx or 5xx reply, which the tarpit delays.
    pub fn is_failure(&self) -> bool {
        self.code >= 400
    }

    /// Appends the reply as one line (or several, for multi-line text
    /// separated by '\n'), with the enhanced code when `enhanced`.
    pub fn write_to(&self, out: &mut Vec<u8>, enhanced: bool) {
        let lines: Vec<&str> = self.text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 < lines.len() { '-' } else { ' ' };
            out.extend_from_slice(format!("{}{sep}", self.code).as_bytes());
            if enhanced && !self.status.is_empty() {
                out.extend_from_slice(self.status.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn to_line(&self, enhanced: bool) -> String {
        let mut v = Vec::new();
        self.write_to(&mut v, enhanced);
        String::from_utf8(v).expect("replies are UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_and_without_enhanced_codes() {
        assert_eq!(
            UNABLE_TO_RELAY.to_line(true),
            "550 5.7.1 Unable to relay\r\n"
        );
        assert_eq!(UNABLE_TO_RELAY.to_line(false), "550 Unable to relay\r\n");
        assert_eq!(
            START_DATA.to_line(true),
            "354 Start mail input; end with <CRLF>.<CRLF>\r\n"
        );
        let multi = Reply::new(250, "", "a\nb\nc");
        assert_eq!(multi.to_line(true), "250-a\r\n250-b\r\n250 c\r\n");
    }
}
