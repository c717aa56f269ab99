//! Why a message did not go, and at which step: what the retry policy
//! decides on. Every transport returns it; it depends on none of them.

use crate::domain::Reply;

/// Which step of a mail transaction an error answered. Only a recipient's
/// refusal says something about that recipient; a refused sender or a
/// failing connection says something about us or the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Connecting, TLS, AUTH, or the network mid-transaction.
    Connection,
    /// MAIL FROM.
    Sender,
    /// RCPT TO.
    Recipient,
    /// DATA and the message itself (content, size, policy).
    Message,
}

/// Why a message did not go. The retry policy reads it through
/// [`is_transient`](SendError::is_transient) and
/// [`is_permanent`](SendError::is_permanent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct SendError {
    /// The server's reply was permanent (5xx), or we refuse for good.
    pub permanent: bool,
    pub stage: Stage,
    pub reply: Reply,
    /// The connection is unusable afterwards (dropped, timed out, aborted).
    pub connection_lost: bool,
}

impl SendError {
    pub fn transient(text: impl Into<String>) -> Self {
        SendError {
            permanent: false,
            stage: Stage::Connection,
            reply: Reply {
                code: None,
                enhanced_code: None,
                text: text.into(),
            },
            connection_lost: true,
        }
    }

    /// A message that can never go (it cannot be built, or the server can
    /// never take it).
    pub fn permanent(text: impl Into<String>) -> Self {
        SendError {
            permanent: true,
            stage: Stage::Message,
            reply: Reply {
                code: None,
                enhanced_code: None,
                text: text.into(),
            },
            connection_lost: false,
        }
    }

    /// Worth another try later. A 5xx to MAIL FROM or to the connection is
    /// counted here too: it is the same for every recipient (a rejected
    /// sender, a blocked IP), so failing each row would lose the whole
    /// list; deferring lets the failure window pause the campaign.
    pub fn is_transient(&self) -> bool {
        !self.is_permanent()
    }

    /// This recipient (or this message) will never be accepted.
    pub fn is_permanent(&self) -> bool {
        self.permanent && matches!(self.stage, Stage::Recipient | Stage::Message)
    }

    /// The recipient's mailbox does not exist (RFC 3463 5.1.1 bad mailbox,
    /// 5.1.2 bad domain, 5.1.3 bad address syntax, 5.1.6 moved, 5.1.10 null
    /// MX, or a bare 550 to RCPT): no later issue should go there either.
    pub fn is_bad_mailbox(&self) -> bool {
        if !self.permanent || self.stage != Stage::Recipient {
            return false;
        }
        match self.reply.enhanced_code.as_deref() {
            Some(code) => matches!(code, "5.1.1" | "5.1.2" | "5.1.3" | "5.1.6" | "5.1.10"),
            None => self.reply.code == Some(550),
        }
    }

    fn describe(&self) -> String {
        match (self.reply.code, &self.reply.enhanced_code) {
            (Some(code), Some(enhanced)) => format!("{code} {enhanced} {}", self.reply.text),
            (Some(code), None) => format!("{code} {}", self.reply.text),
            _ => self.reply.text.clone(),
        }
    }
}
