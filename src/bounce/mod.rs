//! Bounces and complaints: what happened to mail after a relay accepted it.
//!
//! - `report`: what a bounce, complaint or auto-reply says, as plain data.
//! - `parse`: a pure function from a raw message to a [`ParsedReport`]
//!   (RFC 3464 DSNs, RFC 5965 ARF, the non-standard bounces real mail
//!   systems send, RFC 3834 auto-replies). No I/O.
//! - `policy`: pure decisions (hard bounce, soft-bounce counting,
//!   complaint) over what the store knows.
//! - `record`: matches a report to its delivery and subscriber and applies
//!   the policy in one transaction; every way in (pipe, import, IMAP,
//!   webhooks) ends here.
//!
//! This stage sits above `store` and `subscription` and below `http` and
//! `commands`; `send` does not know it exists (they share only the VERP
//! address codec in `domain`).

pub mod intake;
pub mod parse;
pub mod policy;
pub mod record;
pub mod report;

pub use parse::parse;
pub use record::{Channel, Incoming, Provider, RecordError, RecordOutcome, Recorder};
pub use report::{FailureClass, ParsedReport, RecipientReport, ReportKind};
