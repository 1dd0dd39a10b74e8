//! SMTP smuggling: only CRLF.CRLF ends DATA, so a message cannot hide a
//! second one behind a bare-LF or bare-CR end-of-data.

use crate::support::client::Client;
use crate::support::scenario::{edge, queued};

#[tokio::test]
async fn bare_line_end_variants_do_not_end_data() {
    let e = edge().await;
    for (i, end) in ["\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r.\r\n"]
        .iter()
        .enumerate()
    {
        let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
        c.cmd("EHLO mta").await;
        c.cmd("MAIL FROM:<a@fabrikam.example>").await;
        c.cmd("RCPT TO:<bob@contoso.test>").await;
        assert_eq!(c.cmd("DATA").await.code, 354);
        let attack = format!(
            "Subject: outer {i}\r\n\r\nhello{end}MAIL FROM:<admin@contoso.test>\r\nRCPT TO:<victim@contoso.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n"
        );
        c.raw(attack.as_bytes()).await;
        let r = c.reply().await.unwrap();
        assert_eq!(r.code, 250, "{}", r.text);
        // Nothing else answers: the smuggled commands were message content.
        assert_eq!(c.cmd("NOOP").await.code, 250);
    }
    let q = queued(&e.app).await;
    assert_eq!(
        q.len(),
        5,
        "one message per session, never a smuggled second one"
    );
    for (_, sender, rcpts, body) in &q {
        assert_eq!(sender, "a@fabrikam.example");
        assert_eq!(rcpts, &vec!["bob@contoso.test".to_string()]);
        assert!(
            body.contains("MAIL FROM:<admin@contoso.test>"),
            "the attack stays inside the message"
        );
        assert!(
            !body.contains("\n.\n") && !body.contains("\r.\r"),
            "bare line ends are normalised to CRLF"
        );
    }
}
