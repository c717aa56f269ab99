use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;

use crate::cli::PreviewArgs;
use crate::config::Settings;
use crate::http::preview::{bind, serve_preview, WatchedIssue};
use crate::render::{self, Templates};

use super::check::load_one;
use super::{shutdown_signal, success, user_error, write_atomically};

pub use crate::render::PLACEHOLDER_RECIPIENT;

pub fn run(settings: &Settings, issue_path: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let issue = load_one(settings, issue_path)?;
    let templates = Templates::load(&settings.templates_dir())?;
    let preview = render::render_preview(&issue, settings, &templates, SystemTime::now())?;
    let slug = issue.slug.as_str();
    let files = [
        (
            out.join(format!("{slug}.html")),
            preview.email.html.into_bytes(),
        ),
        (
            out.join(format!("{slug}.txt")),
            preview.email.text.into_bytes(),
        ),
        (out.join(format!("{slug}.eml")), preview.message.formatted()),
    ];
    for (path, contents) in &files {
        write_atomically(path, contents)
            .with_context(|| format!("writing preview {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    success()
}

/// `herald preview --watch`: serves the live preview until Ctrl-C (or
/// SIGTERM). The config is read by the preview itself, at start and after
/// every change, so a broken config shows on the page instead of stopping it.
pub fn watch(config: &Path, explicit: bool, args: &PreviewArgs) -> anyhow::Result<ExitCode> {
    if !args.issue.is_file() {
        return Err(user_error(format!(
            "{}: no such issue file",
            args.issue.display()
        )));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = bind(args.listen.as_deref()).await?;
        let address = listener.local_addr()?;
        if !address.ip().is_loopback() {
            eprintln!(
                "warning: {address} is not loopback; anyone who reaches it can read this draft"
            );
        }
        println!(
            "previewing {} on http://{address}/ (Ctrl-C stops)",
            args.issue.display()
        );
        let source = WatchedIssue {
            issue: args.issue.clone(),
            config: config.to_path_buf(),
            config_explicit: explicit,
        };
        serve_preview(listener, source, shutdown_signal()).await
    })?;
    println!("stopped");
    success()
}
