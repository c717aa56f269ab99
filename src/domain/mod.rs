//! Small validated types. Raw input is converted once, at the edge (CLI,
//! HTTP form, CSV import, issue file); everything past that point can trust it.

mod issue_slug;
mod subscriber_email;
mod subscriber_name;
mod token;
mod verp;

pub use issue_slug::IssueSlug;
pub use subscriber_email::SubscriberEmail;
pub use subscriber_name::SubscriberName;
pub use token::Token;
pub use verp::{ReturnPath, Verp, VerpKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DomainError(pub String);
