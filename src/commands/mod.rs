//! What each subcommand does: plain functions over the stages, with the
//! file writing and printing that the stages themselves never do.

pub mod admin;
pub mod bounces;
pub mod build;
pub mod check;
pub mod completions;
pub mod db;
pub mod doctor;
pub mod init;
pub mod man;
pub mod preview;
pub mod send;
pub mod serve;
pub mod status;
pub mod subscribers;
pub mod worker;

use std::path::Path;
use std::process::ExitCode;

pub use crate::error::{error_message, user_error, UserError};

pub fn success() -> anyhow::Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}

/// Writes a file so that a reader never sees half of it: a temporary file in
/// the same folder, then a rename over the old one.
pub fn write_atomically(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    #[cfg(unix)]
    {
        // NamedTempFile is 0600; a published page must be readable by a web server.
        use std::os::unix::fs::PermissionsExt;
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    temp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one (service managers
/// and `kill` stop servers that way).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::error_message;

    #[test]
    fn error_message_says_a_repeated_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("decoding column \"recipient\": {0}")]
        struct Repeats(#[source] std::io::Error);
        let inner = std::io::Error::other("mismatched types");
        let error = anyhow::Error::new(Repeats(inner)).context("claiming deliveries");
        assert_eq!(
            error_message(&error),
            "claiming deliveries: decoding column \"recipient\": mismatched types"
        );
        let plain = Err::<(), _>(std::io::Error::other("disk full"))
            .context("writing x")
            .unwrap_err();
        assert_eq!(error_message(&plain), "writing x: disk full");
    }
}
