//! `herald preview --watch`: renders one issue, serves the preview page on
//! loopback, and renders again whenever the issue, a template or the config
//! changes. Open pages learn of a new rendering over server-sent events and
//! reload themselves. A broken file shows its diagnostics instead of the
//! email; the server keeps running, and the email comes back once the file
//! is fixed.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::Stream;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::server::{serve, ServerLimits};
use crate::config::Settings;
use crate::error::user_error;
use crate::issue::{self, Diagnostic};
use crate::render::{self, PreviewEmail, PreviewPage, Templates};

/// Where the preview listens unless told otherwise: next to `herald
/// serve`'s 8080, on loopback only, since a draft is not for the network.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8082";

/// How often the watched files are looked at. Polling their metadata
/// rather than subscribing to inotify/FSEvents (the `notify` crate): the
/// watched set is about a dozen small files, so a poll costs a dozen stat
/// calls; it sees the save of every editor alike (vim and others write a
/// new file and rename it over the old one, which drops a watch on the file
/// and needs the folder watched and the events filtered instead); it works
/// where notifications do not (network and container file systems); and it
/// needs no extra dependency. A change shows within two polls.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// An open page hears something at least this often, so proxies and the
/// server's own idle timeout never cut a quiet event stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Limits for a server that only the editor's own browser talks to. The
/// idle timeout is well above [`KEEP_ALIVE`]; the grace period is short
/// because a preview has nothing worth finishing.
const LIMITS: ServerLimits = ServerLimits {
    header_timeout: Duration::from_secs(10),
    body_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(120),
    max_connections: 64,
    shutdown_grace: Duration::from_secs(2),
};

/// The files a preview renders from.
#[derive(Debug, Clone)]
pub struct WatchedIssue {
    pub issue: PathBuf,
    pub config: PathBuf,
    /// The config was named on the command line, so it must exist (as for
    /// every command; see `Settings::load`).
    pub config_explicit: bool,
}

/// What one rendering of the watched files showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendering {
    /// `herald check`'s findings in the issue, warnings included.
    pub diagnostics: Vec<Diagnostic>,
    /// What failed outside the issue's lines: the config, the templates.
    pub failures: Vec<String>,
    /// The email, when nothing above is an error.
    pub email: Option<PreviewEmail>,
}

impl Rendering {
    fn failed(message: String) -> Self {
        Rendering {
            diagnostics: Vec::new(),
            failures: vec![message],
            email: None,
        }
    }
}

/// A rendering and its number; the number grows by one for each rendering
/// that differs from the one before.
#[derive(Debug)]
struct Snapshot {
    generation: u64,
    rendering: Rendering,
}

#[derive(Clone)]
struct PreviewState {
    issue: Arc<Path>,
    current: watch::Receiver<Arc<Snapshot>>,
}

/// Binds `listen`, or [`DEFAULT_LISTEN`] when it is `None` and free, or else
/// a port the system picks (so a second preview still starts).
pub async fn bind(listen: Option<&str>) -> anyhow::Result<TcpListener> {
    let wanted = listen.unwrap_or(DEFAULT_LISTEN);
    let address: SocketAddr = wanted.parse().map_err(|_| {
        user_error(format!(
            "--listen {wanted:?} is not an address and port, e.g. \"127.0.0.1:8082\""
        ))
    })?;
    match TcpListener::bind(address).await {
        Ok(listener) => Ok(listener),
        Err(e) if listen.is_none() && e.kind() == std::io::ErrorKind::AddrInUse => {
            let any_port = SocketAddr::new(address.ip(), 0);
            TcpListener::bind(any_port)
                .await
                .map_err(|e| user_error(format!("cannot listen on {any_port}: {e}")))
        }
        Err(e) => Err(user_error(format!("cannot listen on {address}: {e}"))),
    }
}

/// Renders `source`, serves the preview on `listener` and keeps it current
/// until `shutdown` resolves.
pub async fn serve_preview(
    listener: TcpListener,
    source: WatchedIssue,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let source = Arc::new(source);
    let guess = watched_paths(&source, None);
    let before = stamps(&guess);
    let (rendering, paths, rendered) = render_after(source.clone(), &guess, before).await;
    report(&source.issue, &rendering);
    let (sender, current) = watch::channel(Arc::new(Snapshot {
        generation: 1,
        rendering,
    }));
    let (stop, stopped) = watch::channel(false);
    let watcher = tokio::spawn(watch_files(
        source.clone(),
        sender,
        paths,
        rendered,
        stopped,
    ));
    let app = preview_router(PreviewState {
        issue: Arc::from(source.issue.as_path()),
        current,
    });
    // Stopping the watcher drops the sender, which ends every event stream,
    // so open pages do not hold the shutdown up.
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    serve(listener, app, LIMITS, shutdown).await;
    let _ = watcher.await;
    Ok(())
}

fn preview_router(state: PreviewState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/email.html", get(email_html))
        .route("/events", get(events))
        .with_state(state)
}

/// The preview page of the current rendering.
async fn page(State(state): State<PreviewState>) -> Response {
    let snapshot = state.current.borrow().clone();
    let rendering = &snapshot.rendering;
    let page = render::render_preview_page(&PreviewPage {
        source: &state.issue,
        generation: snapshot.generation,
        diagnostics: &rendering.diagnostics,
        failures: &rendering.failures,
        email: rendering.email.as_ref(),
    });
    match page {
        Ok(html) => fresh("text/html; charset=utf-8", html),
        Err(error) => {
            tracing::error!("rendering the preview page: {error:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the preview page failed").into_response()
        }
    }
}

/// The HTML part alone, to open at full size or hand to other tools.
async fn email_html(State(state): State<PreviewState>) -> Response {
    let snapshot = state.current.borrow().clone();
    match &snapshot.rendering.email {
        Some(email) => fresh("text/html; charset=utf-8", email.html.clone()),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the issue does not render now; the preview page says why\n",
        )
            .into_response(),
    }
}

/// A response no browser caches: a reload must show the new rendering.
fn fresh(content_type: &'static str, body: String) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Server-sent events: a `render` event carrying the current generation at
/// once (so a page that loaded just before a change still learns of it),
/// then one after every change.
async fn events(
    State(state): State<PreviewState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream =
        futures_util::stream::unfold((state.current, true), |(mut current, first)| async move {
            if !first && current.changed().await.is_err() {
                return None;
            }
            let generation = current.borrow_and_update().generation;
            let mut event = Event::default()
                .event("render")
                .data(generation.to_string());
            if first {
                // After the preview restarts, reconnect quickly.
                event = event.retry(Duration::from_millis(500));
            }
            Some((Ok(event), (current, false)))
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// Looks at the watched files every [`POLL_INTERVAL`] and renders again
/// once a change has settled: the files must look the same on two polls in
/// a row, so an editor's save in several writes renders once, whole.
async fn watch_files(
    source: Arc<WatchedIssue>,
    sender: watch::Sender<Arc<Snapshot>>,
    mut paths: Vec<PathBuf>,
    mut rendered: Vec<Option<Stamp>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut settling: Option<Vec<Option<Stamp>>> = None;
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        let now = stamps(&paths);
        if now == rendered {
            settling = None;
            continue;
        }
        if settling.as_ref() != Some(&now) {
            settling = Some(now);
            continue;
        }
        settling = None;
        let rendering;
        (rendering, paths, rendered) = render_after(source.clone(), &paths, now).await;
        let changed = sender.send_if_modified(|current| {
            if current.rendering == rendering {
                return false;
            }
            *current = Arc::new(Snapshot {
                generation: current.generation + 1,
                rendering: rendering.clone(),
            });
            true
        });
        if changed {
            report(&source.issue, &rendering);
        }
    }
}

/// Renders the files `stamps_before` was just taken of. The stamps come
/// before the reading, so a write during the rendering shows as a change at
/// the next poll. When the config names another templates folder, the
/// stamps of its files are taken now (a write in that instant is missed
/// until the next one).
async fn render_after(
    source: Arc<WatchedIssue>,
    stamped_paths: &[PathBuf],
    stamps_before: Vec<Option<Stamp>>,
) -> (Rendering, Vec<PathBuf>, Vec<Option<Stamp>>) {
    let (rendering, paths) = render_in_background(source).await;
    let stamped = if stamped_paths == paths.as_slice() {
        stamps_before
    } else {
        stamps(&paths)
    };
    (rendering, paths, stamped)
}

/// [`render_once`] off the async threads (MJML takes milliseconds); a panic
/// in it becomes a failure on the page, not the end of the preview.
async fn render_in_background(source: Arc<WatchedIssue>) -> (Rendering, Vec<PathBuf>) {
    let fallback = watched_paths(&source, None);
    match tokio::task::spawn_blocking(move || render_once(&source)).await {
        Ok(done) => done,
        Err(error) => (
            Rendering::failed(format!("rendering the preview failed: {error}")),
            fallback,
        ),
    }
}

/// Reads the config, the templates and the issue as `herald check` and
/// `herald preview` do, and renders the email. Returns what to show and
/// which files it came from.
pub fn render_once(source: &WatchedIssue) -> (Rendering, Vec<PathBuf>) {
    let settings = match Settings::load(&source.config, source.config_explicit) {
        Ok(settings) => settings,
        Err(error) => {
            let paths = watched_paths(source, None);
            return (Rendering::failed(format!("{error:#}")), paths);
        }
    };
    let templates_dir = settings.templates_dir();
    let paths = watched_paths(source, Some(&templates_dir));
    let templates = match Templates::load(&templates_dir) {
        Ok(templates) => templates,
        Err(error) => return (Rendering::failed(format!("{error:#}")), paths),
    };
    let checked = match issue::read_issue(&source.issue, &settings.site.base_url) {
        Ok(checked) => checked,
        Err(error) => return (Rendering::failed(format!("{error:#}")), paths),
    };
    let mut rendering = Rendering {
        diagnostics: checked.diagnostics,
        failures: Vec::new(),
        email: None,
    };
    if let Some(issue) = checked.issue {
        // What `herald check` adds to the file's own findings: whether the
        // email and the site render from it.
        let problems =
            render::rendering_problems(std::slice::from_ref(&issue), &settings, &templates);
        rendering.diagnostics.extend(problems);
        if !rendering.diagnostics.iter().any(Diagnostic::is_error) {
            match render::render_preview(&issue, &settings, &templates, SystemTime::now()) {
                Ok(preview) => rendering.email = Some(preview.email),
                Err(error) => rendering.failures.push(format!("{error:#}")),
            }
        }
    }
    (rendering, paths)
}

/// The config, the issue and every template override the templates folder
/// could hold (a new override file is a change too).
fn watched_paths(source: &WatchedIssue, templates_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut paths = vec![source.config.clone(), source.issue.clone()];
    if let Some(dir) = templates_dir {
        paths.extend(Templates::override_paths(dir));
    }
    paths
}

/// What a poll compares: enough of a file's metadata that any write shows.
/// The change time moves on every write and rename, in nanoseconds on the
/// usual Linux file systems; the length catches a write within one tick of
/// a coarse clock.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: u64,
    #[cfg(unix)]
    changed: (i64, i64),
}

/// A stamp per path, `None` for a file that is not there (or not readable:
/// the rendering says why).
fn stamps(paths: &[PathBuf]) -> Vec<Option<Stamp>> {
    paths
        .iter()
        .map(|path| {
            let metadata = std::fs::metadata(path).ok()?;
            #[cfg(unix)]
            use std::os::unix::fs::MetadataExt;
            Some(Stamp {
                len: metadata.len(),
                modified: metadata.modified().ok(),
                #[cfg(unix)]
                inode: metadata.ino(),
                #[cfg(unix)]
                changed: (metadata.ctime(), metadata.ctime_nsec()),
            })
        })
        .collect()
}

/// Tells the terminal what the page now shows.
fn report(issue: &Path, rendering: &Rendering) {
    for failure in &rendering.failures {
        tracing::error!("{failure}");
    }
    for diagnostic in &rendering.diagnostics {
        if diagnostic.is_error() {
            tracing::error!("{diagnostic}");
        } else {
            tracing::warn!("{diagnostic}");
        }
    }
    if let Some(email) = &rendering.email {
        let size = render::ClipSize::of_html(&email.html);
        tracing::info!(
            "rendered {}: HTML {} ({}% of Gmail's clipping limit)",
            issue.display(),
            size.kilobytes(),
            size.percent()
        );
    }
}
