//! The Issues page: every issue file in the issues folder with what
//! `herald check` says of it, the email as a subscriber would get it (in a
//! sandboxed frame), and "send a test copy to ..." as `herald send --to`
//! does it, rate-limited.
//!
//! Checking renders every issue, which takes milliseconds per issue; the
//! result is kept until a file in the issues or templates folder changes
//! (by name, size or modification time), so the page stays fast however
//! many issues there are.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use super::{internal_error, AdminState, CsrfToken};
use crate::config::Settings;
use crate::domain::SubscriberEmail;
use crate::issue::{self, Diagnostic, Issue, Severity};
use crate::render::{self, EmailContext, Nav, Templates};
use crate::send::test_copy::{send_test_copy, TestCopyError};
use crate::send::AnyTransport;

/// Test copies per minute, for the whole admin site: enough for an editor
/// checking a few inboxes, too few to use the page as a mail cannon.
const TEST_COPIES_PER_MINUTE: u32 = 6;

/// The content security policy of the previewed email: its own inline
/// styles and any image, nothing that runs, and framed only by the admin
/// site itself.
const PREVIEW_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; font-src https: data:; frame-ancestors 'self'; sandbox";

pub fn issue_pages() -> Router<AdminState> {
    Router::new()
        .route("/issues", get(list))
        .route("/issues/{slug}/preview", get(preview))
        .route("/issues/{slug}/test-copy", post(test_copy))
}

/// What the page knows of the issues folder, kept between requests.
pub struct IssueDesk {
    checked: tokio::sync::Mutex<Option<Arc<Checked>>>,
    test_copies: DefaultDirectRateLimiter,
}

impl Default for IssueDesk {
    fn default() -> Self {
        let per_minute = NonZeroU32::new(TEST_COPIES_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        IssueDesk {
            checked: tokio::sync::Mutex::new(None),
            test_copies: RateLimiter::direct(Quota::per_minute(per_minute)),
        }
    }
}

/// Every file's name, size and modification time: what the cache is valid for.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

struct Checked {
    fingerprint: Fingerprint,
    files: Vec<CheckedFile>,
}

struct CheckedFile {
    path: PathBuf,
    issue: Option<Issue>,
    diagnostics: Vec<Diagnostic>,
}

impl Checked {
    fn find(&self, slug: &str) -> Option<&CheckedFile> {
        self.files
            .iter()
            .find(|f| f.issue.as_ref().is_some_and(|i| i.slug.as_str() == slug))
    }
}

impl CheckedFile {
    fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

fn fingerprint(dirs: &[PathBuf]) -> Fingerprint {
    let mut entries = Vec::new();
    for dir in dirs {
        let Ok(read) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in read.flatten() {
            let meta = entry.metadata().ok();
            entries.push((
                entry.path(),
                meta.as_ref().map_or(0, std::fs::Metadata::len),
                meta.and_then(|m| m.modified().ok()),
            ));
        }
    }
    entries.sort();
    entries
}

/// Checks the issues folder as `herald check` does: each file, the files
/// together, then whether each renders.
fn check_folder(settings: &Settings, fingerprint: Fingerprint) -> anyhow::Result<Checked> {
    let paths = issue::issue_files(&settings.issues_dir())?;
    let (issues, diagnostics) = issue::check_files(&paths, &settings.site.base_url)?;
    let templates = Templates::load(&settings.templates_dir())?;
    let mut diagnostics = diagnostics;
    diagnostics.extend(render::rendering_problems(&issues, settings, &templates));
    let mut by_path: HashMap<PathBuf, Vec<Diagnostic>> = HashMap::new();
    for diagnostic in diagnostics {
        by_path
            .entry(diagnostic.path.clone())
            .or_default()
            .push(diagnostic);
    }
    let mut issues_by_path: HashMap<PathBuf, Issue> = issues
        .into_iter()
        .map(|issue| (issue.source.clone(), issue))
        .collect();
    let files = paths
        .into_iter()
        .map(|path| CheckedFile {
            issue: issues_by_path.remove(&path),
            diagnostics: by_path.remove(&path).unwrap_or_default(),
            path,
        })
        .collect();
    Ok(Checked { fingerprint, files })
}

/// The check of the folder as it is now: the kept one when nothing changed.
async fn current(state: &AdminState) -> anyhow::Result<Arc<Checked>> {
    let settings = state.settings.clone();
    let dirs = vec![settings.issues_dir(), settings.templates_dir()];
    let mut kept = state.issues.checked.lock().await;
    let now = tokio::task::spawn_blocking(move || fingerprint(&dirs)).await?;
    if let Some(checked) = kept.as_ref().filter(|c| c.fingerprint == now) {
        return Ok(checked.clone());
    }
    let checked = tokio::task::spawn_blocking(move || check_folder(&settings, now)).await??;
    let checked = Arc::new(checked);
    *kept = Some(checked.clone());
    Ok(checked)
}

#[derive(Serialize)]
struct DiagnosticView {
    location: String,
    severity: &'static str,
    message: String,
}

#[derive(Serialize)]
struct IssueRow {
    file: String,
    slug: Option<String>,
    number: Option<u32>,
    title: Option<String>,
    /// `ok`, `warnings` or `errors`.
    status: &'static str,
    errors: bool,
    diagnostics: Vec<DiagnosticView>,
}

#[derive(Serialize)]
struct Notice {
    /// `ok` or `error`.
    kind: &'static str,
    text: String,
}

#[derive(Serialize)]
struct IssuesView {
    folder: String,
    csrf: String,
    issues: Vec<IssueRow>,
    notice: Option<Notice>,
}

fn file_name(path: &FsPath) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn row(file: &CheckedFile) -> IssueRow {
    let status = if file.has_errors() {
        "errors"
    } else if file.diagnostics.is_empty() {
        "ok"
    } else {
        "warnings"
    };
    IssueRow {
        file: file_name(&file.path),
        slug: file.issue.as_ref().map(|i| i.slug.to_string()),
        number: file.issue.as_ref().map(|i| i.number),
        title: file.issue.as_ref().map(|i| i.title.clone()),
        status,
        errors: file.has_errors(),
        diagnostics: file
            .diagnostics
            .iter()
            .map(|d| DiagnosticView {
                location: format!("{}:{}:{}", file_name(&d.path), d.line, d.column),
                severity: match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                message: d.message.clone(),
            })
            .collect(),
    }
}

async fn render_list(
    state: &AdminState,
    csrf: &CsrfToken,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let checked = match current(state).await {
        Ok(checked) => checked,
        Err(error) => return internal_error(&error),
    };
    let view = IssuesView {
        folder: state.settings.issues_dir().display().to_string(),
        csrf: csrf.as_str().to_string(),
        issues: checked.files.iter().map(row).collect(),
        notice,
    };
    let mut response = state.render("Issues", Nav::Issues, csrf.as_str(), "issues", &view);
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

async fn list(State(state): State<AdminState>, Extension(csrf): Extension<CsrfToken>) -> Response {
    render_list(&state, &csrf, None, StatusCode::OK).await
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such issue").into_response()
}

/// The email's HTML for the placeholder recipient, for the page's
/// sandboxed frame. Its own CSP and X-Frame-Options let the admin site
/// (only) frame it.
async fn preview(State(state): State<AdminState>, Path(slug): Path<String>) -> Response {
    match preview_html(&state, &slug).await {
        Ok(Some(html)) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, PREVIEW_CSP),
                (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
            ],
            html,
        )
            .into_response(),
        Ok(None) => not_found(),
        Err(error) => internal_error(&error),
    }
}

async fn preview_html(state: &AdminState, slug: &str) -> anyhow::Result<Option<String>> {
    let checked = current(state).await?;
    let Some(issue) = checked.find(slug).and_then(|f| f.issue.as_ref()) else {
        return Ok(None);
    };
    let templates = Templates::load(&state.settings.templates_dir())?;
    let preview = render::render_preview(issue, &state.settings, &templates, SystemTime::now())?;
    Ok(Some(preview.email.html))
}

#[derive(Debug, Deserialize)]
struct TestCopyForm {
    to: String,
}

async fn test_copy(
    State(state): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(slug): Path<String>,
    Form(form): Form<TestCopyForm>,
) -> Response {
    let notice = |kind, text| Some(Notice { kind, text });
    let recipient = match SubscriberEmail::parse(&form.to) {
        Ok(recipient) => recipient,
        Err(error) => {
            let refusal = notice("error", error.to_string());
            return render_list(&state, &csrf, refusal, StatusCode::BAD_REQUEST).await;
        }
    };
    let checked = match current(&state).await {
        Ok(checked) => checked,
        Err(error) => return internal_error(&error),
    };
    let Some(file) = checked.find(&slug) else {
        return not_found();
    };
    let Some(issue) = file.issue.as_ref().filter(|_| !file.has_errors()) else {
        let text = format!("{} has errors; fix them first", file_name(&file.path));
        let refusal = notice("error", text);
        return render_list(&state, &csrf, refusal, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    if state.issues.test_copies.check().is_err() {
        let text =
            format!("at most {TEST_COPIES_PER_MINUTE} test copies a minute; try again in a minute");
        let refusal = notice("error", text);
        return render_list(&state, &csrf, refusal, StatusCode::TOO_MANY_REQUESTS).await;
    }
    match send_one(&state.settings, issue, &recipient).await {
        Ok(reply) => {
            tracing::info!(issue = %slug, "test copy sent from the admin site");
            let text = format!(
                "Test copy of {slug} sent to {recipient}: {} {}",
                reply.code.unwrap_or(250),
                reply.text
            );
            render_list(&state, &csrf, notice("ok", text), StatusCode::OK).await
        }
        Err(TestCopyError::Unexpected(error)) => internal_error(&error),
        Err(error) => {
            let refusal = notice("error", error.to_string());
            render_list(&state, &csrf, refusal, StatusCode::BAD_GATEWAY).await
        }
    }
}

async fn send_one(
    settings: &Settings,
    issue: &Issue,
    recipient: &SubscriberEmail,
) -> Result<crate::domain::Reply, TestCopyError> {
    let templates = Templates::load(&settings.templates_dir())?;
    let context = EmailContext {
        site_title: &settings.site.title,
        language: &settings.site.language,
    };
    let email = render::render_email(issue, &context, &templates)?;
    let web_url = settings.issue_url(issue.slug.as_str()).to_string();
    let transport = AnyTransport::from_settings(settings)?;
    send_test_copy(settings, email, web_url, &transport, recipient).await
}
