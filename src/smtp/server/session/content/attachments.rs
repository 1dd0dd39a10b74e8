//! The Attachment Filtering agent.

use tokio::io::{AsyncRead, AsyncWrite};

use super::super::{Next, Session};
use super::*;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// The Attachment Filter agent at the end of data: the message as it
    /// should be queued (stripped of unwanted parts), or the session's next
    /// step when it is refused or silently dropped.
    pub(super) async fn attachment_filter(
        &mut self,
        body: crate::queue::spool::MessageBody,
        headers: &[u8],
        tx: &super::Transaction,
    ) -> Result<crate::queue::spool::MessageBody, Next> {
        use crate::agents::attachment_filter::{Scan, scan, single_part, strip};
        use crate::model::anti_spam::AgentName;
        use crate::model::attachment_filter::AttachmentFilterAction as A;
        let snap = self.snap.clone();
        let cfg = &snap.anti_spam.attachment_filter_config.spec;
        if !snap
            .anti_spam
            .agents
            .spec
            .enabled(AgentName::AttachmentFiltering)
            || cfg.entries.is_empty()
            || cfg
                .exception_connectors
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&self.c().name))
        {
            return Ok(body);
        }
        // A single-part message is decided by its header block alone; only
        // a multipart or attached message is read and walked whole.
        let (found, raw) = match single_part(headers, cfg) {
            Some(found) => (found, vec![]),
            None => {
                let Ok(raw) = body.to_vec() else {
                    return Err(self.reply(replies::QUEUE_FAILED).await);
                };
                // Parsing a large message is CPU work: off the async workers.
                let config = cfg.clone();
                let Ok(walked) =
                    tokio::task::spawn_blocking(move || (scan(&raw, &config), raw)).await
                else {
                    return Err(self.reply(replies::QUEUE_FAILED).await);
                };
                walked
            }
        };
        let unwanted = match found {
            // The spooled body as it was: a large one stays on disk.
            Scan::Clean => return Ok(body),
            Scan::Unwanted(u) => u,
            Scan::Unreadable => vec![],
        };
        let what = if unwanted.is_empty() {
            "the message is not readable as MIME".to_string()
        } else {
            unwanted
                .iter()
                .map(|u| u.what.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Nothing can be stripped from an unreadable message, or from one
        // that is itself the attachment: it is refused instead.
        let action = match cfg.action {
            A::Strip if unwanted.is_empty() || unwanted.iter().any(|u| u.whole_message) => {
                A::Reject
            }
            a => a,
        };
        let recipients = tx
            .recipients
            .iter()
            .map(|r| r.address.to_string())
            .collect();
        let name = match action {
            A::Reject => "Reject",
            A::Strip => "Strip",
            A::SilentDelete => "SilentDelete",
        };
        self.report_agent(
            AgentName::AttachmentFiltering,
            name,
            &what,
            &tx.sender,
            recipients,
        );
        match action {
            A::Reject => Err(self
                .reply(Reply::new(550, "5.7.1", cfg.reject_response.clone()))
                .await),
            A::SilentDelete => Err(self.silently_dropped().await),
            A::Strip => Ok(strip(&raw, &unwanted, &cfg.admin_message).into()),
        }
    }
}
