use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use url::Url;

use crate::config::Settings;
use crate::issue;
use crate::render::feed::{self, FEEDS};
use crate::render::{self, Templates};

use super::check::report;
use super::{success, user_error, write_atomically, UserError};

/// How long a WebSub hub gets to answer before the ping counts as failed.
const HUB_TIMEOUT: Duration = Duration::from_secs(10);

/// What a build did to the output folder.
#[derive(Debug)]
pub struct BuildReport {
    pub issues: usize,
    /// Relative paths of the files written, in render order.
    pub written: Vec<String>,
    pub unchanged: usize,
}

impl BuildReport {
    /// The feeds whose bytes changed: the ones a WebSub hub should hear of.
    pub fn changed_feeds(&self) -> Vec<feed::FeedKind> {
        FEEDS
            .into_iter()
            .filter(|kind| self.written.iter().any(|path| path == kind.file))
            .collect()
    }
}

pub fn run(settings: &Settings, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| settings.output_dir());
    let report = build_site(settings, &out)?;
    println!(
        "built {} issue(s) into {}: {} file(s) written, {} unchanged",
        report.issues,
        out.display(),
        report.written.len(),
        report.unchanged
    );
    if let Some(hub) = &settings.feeds.websub_hub {
        announce(settings, hub, &out, &report.changed_feeds());
    }
    success()
}

/// Feeds whose announcement failed, kept for the next build: a rebuild with
/// nothing new writes no feed, and would otherwise never announce the issue
/// the hub missed. A dot-file, which `herald serve` never serves.
const PENDING_PINGS: &str = ".websub-pending";

/// Pings the hub for the feeds that changed now or whose last ping failed.
/// A failure is a warning (the site is built and correct, and readers'
/// apps poll anyway) and is remembered for the next build.
fn announce(settings: &Settings, hub: &Url, out: &Path, changed: &[feed::FeedKind]) {
    let pending_file = out.join(PENDING_PINGS);
    let earlier = std::fs::read_to_string(&pending_file).unwrap_or_default();
    let due: Vec<feed::FeedKind> = FEEDS
        .into_iter()
        .filter(|kind| changed.contains(kind) || earlier.lines().any(|l| l == kind.file))
        .collect();
    if due.is_empty() {
        return;
    }
    let urls: Vec<Url> = due
        .iter()
        .map(|kind| feed::feed_url(settings, kind))
        .collect();
    match ping_hub(hub, &urls) {
        Ok(()) => {
            println!("notified WebSub hub {hub} of {} feed(s)", urls.len());
            let _ = std::fs::remove_file(&pending_file);
        }
        Err(e) => {
            eprintln!("warning: WebSub ping to {hub} failed: {e:#}; the next build tries again");
            let names: Vec<&str> = due.iter().map(|kind| kind.file).collect();
            if let Err(e) = write_atomically(&pending_file, names.join("\n").as_bytes()) {
                eprintln!("warning: could not remember the failed ping: {e:#}");
            }
        }
    }
}

/// Renders every issue of the issues folder and writes the files that
/// changed. When any issue is invalid, its diagnostics print and nothing is
/// written.
pub fn build_site(settings: &Settings, out: &Path) -> anyhow::Result<BuildReport> {
    let issues_dir = settings.issues_dir();
    let issues =
        match issue::load_folder(&issues_dir, &settings.site.base_url).map_err(UserError::wrap)? {
            Ok(issues) => issues,
            Err(diagnostics) => {
                report(&diagnostics);
                return Err(user_error(format!(
                    "{}: {} error(s), see above; nothing was written",
                    issues_dir.display(),
                    diagnostics.len()
                )));
            }
        };
    let templates = Templates::load(&settings.templates_dir()).map_err(UserError::wrap)?;
    let files = render::render_site(&issues, settings, &templates)?;
    let mut report = BuildReport {
        issues: issues.len(),
        written: Vec::new(),
        unchanged: 0,
    };
    // Leaving an unchanged file alone keeps its mtime, and with it the
    // server's Last-Modified and every reader's cached copy.
    let changed: Vec<render::SiteFile> = files
        .into_iter()
        .filter(|file| {
            let same = std::fs::read(out.join(&file.path)).is_ok_and(|old| old == file.bytes);
            report.unchanged += usize::from(same);
            !same
        })
        .collect();
    // Pages first, then what links to them (the index and the feeds), so a
    // reader following a fresh feed entry never finds its page missing.
    let (entry_points, pages): (Vec<_>, Vec<_>) = changed.into_iter().partition(|file| {
        file.path == "index.html" || FEEDS.iter().any(|kind| kind.file == file.path)
    });
    write_all(out, &pages)?;
    write_all(out, &entry_points)?;
    report
        .written
        .extend(pages.into_iter().chain(entry_points).map(|file| file.path));
    Ok(report)
}

/// Files written at once: each atomic write waits for its fsync, and
/// overlapping those waits is what keeps a 500-issue cold build fast.
const WRITERS: usize = 8;

fn write_all(out: &Path, files: &[render::SiteFile]) -> anyhow::Result<()> {
    let chunk = files.len().div_ceil(WRITERS).max(1);
    std::thread::scope(|scope| {
        let writers: Vec<_> = files
            .chunks(chunk)
            .map(|chunk| {
                scope.spawn(move || {
                    for file in chunk {
                        let path: PathBuf = out.join(&file.path);
                        write_atomically(&path, &file.bytes)
                            .with_context(|| format!("writing {}", path.display()))?;
                        tracing::debug!("wrote {}", path.display());
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        writers
            .into_iter()
            .try_for_each(|writer| writer.join().expect("a writer thread panicked"))
    })
}

/// Tells a WebSub hub that these feeds have new content
/// (`hub.mode=publish`, one POST per feed, as hubs expect).
fn ping_hub(hub: &Url, feed_urls: &[Url]) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the HTTP client")?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(HUB_TIMEOUT)
            .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
            .build()?;
        for url in feed_urls {
            client
                .post(hub.clone())
                .form(&[("hub.mode", "publish"), ("hub.url", url.as_str())])
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .with_context(|| format!("announcing {url}"))?;
        }
        Ok(())
    })
}
