//! The one distinction every command's exit code makes: an error caused by
//! the input (a bad issue, config, argument or setting: exit 1) or anything
//! else (an internal fault: exit 3). Here, below the stages, so that a stage
//! can say a problem is the user's.

/// An error caused by the input: exit 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

impl UserError {
    pub fn wrap(error: anyhow::Error) -> anyhow::Error {
        let message = format!("{error:#}");
        anyhow::Error::new(UserError(message))
    }
}

pub fn user_error(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UserError(message.into()))
}

/// An error and its causes, joined by ": " as `{:#}` does, leaving out a
/// cause whose text the message before it already ends with: some errors
/// (sqlx's ColumnDecode among them) repeat their source in their own
/// message, and the chain would say it twice.
pub fn error_message(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.is_empty() {
            message = text;
        } else if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}
