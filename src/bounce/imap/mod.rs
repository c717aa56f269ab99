//! The bounce mailbox `herald serve` polls over IMAP (`[bounces] imap_url`).
//!
//! - `config`: the URL, the password from the environment, the TLS roots.
//! - `session`: connecting with TLS (implicit or required STARTTLS) and
//!   logging in, every step under a deadline.
//! - `poll`: one poll ([`poll_once`]) and the loop ([`run_poller`]); the
//!   mailbox rule is the pure [`disposition`].

mod config;
mod poll;
mod session;

pub use config::{parse_imap_url, ImapConfig, ImapTarget, Security};
pub use poll::{
    disposition, poll_once, retry_after, run_poller, wait_after, Disposition, Keyword, PollSummary,
    Verdict, MAX_MESSAGE_BYTES,
};
pub use session::{connect, ImapSession};

/// A poll that could not finish: the server is unreachable, refused a
/// command, or stopped answering. The poller reconnects with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("IMAP: {0}")]
    Server(String),
}
