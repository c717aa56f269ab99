//! Issue files: read, split front matter, parse the Markdown body, validate.
//! The result is a typed [`Issue`]; every problem is a [`Diagnostic`] that
//! names `file:line:column`.

mod diagnostic;
mod front_matter;
pub mod limits;
mod markdown;
mod text;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;
use url::Url;

pub use diagnostic::{Diagnostic, Severity, SourceMap};
pub use markdown::RESERVED_MARKER;
pub use text::TextBlock;

use crate::domain::IssueSlug;

#[derive(Debug, Clone)]
pub struct Issue {
    pub source: PathBuf,
    pub title: String,
    pub number: u32,
    pub date: NaiveDate,
    pub summary: Option<String>,
    pub authors: Vec<String>,
    pub editor: Option<String>,
    pub slug: IssueSlug,
    /// Everything before the first section.
    pub intro: Body,
    pub sections: Vec<Section>,
    number_line: usize,
    slug_line: usize,
}

/// A piece of Markdown, rendered both ways once.
#[derive(Debug, Clone, Default)]
pub struct Body {
    /// Sanitised HTML with absolute URLs.
    pub html: String,
    pub text: Vec<TextBlock>,
}

impl Body {
    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.html.trim().is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct Section {
    pub title: String,
    /// Text between the `##` heading and its first item.
    pub intro: Body,
    pub items: Vec<Item>,
    offset: usize,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub title: String,
    pub url: Option<Url>,
    pub body: Body,
}

impl Issue {
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.sections.iter().flat_map(|s| s.items.iter())
    }
}

/// The outcome of reading one file: the issue when it has no error, and
/// every diagnostic either way.
pub struct Checked {
    pub issue: Option<Issue>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses an issue from its bytes. `base` makes relative links absolute.
pub fn parse_issue(path: &Path, bytes: &[u8], base: &Url) -> Checked {
    if bytes.len() > limits::MAX_ISSUE_BYTES {
        return too_large(path, bytes.len() as u64);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid prefix");
            let map = SourceMap::new(path, valid);
            let mut diagnostic = map.error(valid.len(), "the file is not valid UTF-8");
            diagnostic.snippet = String::from_utf8_lossy(
                bytes[e.valid_up_to()..]
                    .split(|&b| b == b'\n')
                    .next()
                    .unwrap_or(&[]),
            )
            .into_owned();
            return Checked {
                issue: None,
                diagnostics: vec![diagnostic],
            };
        }
    };
    let map = SourceMap::new(path, text);
    let controls = limits::control_characters(text, &map);
    if !controls.is_empty() {
        return Checked {
            issue: None,
            diagnostics: controls,
        };
    }
    let split = match front_matter::split(text, &map) {
        Ok(split) => split,
        Err(d) => {
            return Checked {
                issue: None,
                diagnostics: vec![d],
            }
        }
    };
    let default_slug = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let front = front_matter::parse(&split, &map, default_slug);
    if let Some(too_deep) = limits::nesting(split.body, split.body_offset, &map) {
        let mut diagnostics = front.err().unwrap_or_default();
        diagnostics.push(too_deep);
        return Checked {
            issue: None,
            diagnostics,
        };
    }
    let (body, mut diagnostics) = markdown::parse(split.body, split.body_offset, &map, base);
    let front = match front {
        Ok(front) => Some(front),
        Err(errors) => {
            diagnostics.splice(0..0, errors);
            None
        }
    };
    let issue = match front {
        Some(front) if !diagnostics.iter().any(Diagnostic::is_error) => Some(Issue {
            source: path.to_path_buf(),
            title: front.title,
            number: front.number,
            date: front.date,
            summary: front.summary,
            authors: front.authors,
            editor: front.editor,
            slug: front.slug,
            intro: body.intro,
            sections: body.sections,
            number_line: front.number_line,
            slug_line: front.slug_line,
        }),
        _ => None,
    };
    Checked { issue, diagnostics }
}

/// Reads and parses one issue file. A file over the size limit is refused
/// without reading it whole.
pub fn read_issue(path: &Path, base: &Url) -> anyhow::Result<Checked> {
    use std::io::Read;
    let reading = || format!("reading issue {}", path.display());
    let file = std::fs::File::open(path).with_context(reading)?;
    let mut bytes = Vec::new();
    file.take(limits::MAX_ISSUE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(reading)?;
    if bytes.len() > limits::MAX_ISSUE_BYTES {
        let size = std::fs::metadata(path).with_context(reading)?.len();
        return Ok(too_large(path, size));
    }
    Ok(parse_issue(path, &bytes, base))
}

fn too_large(path: &Path, size: u64) -> Checked {
    Checked {
        issue: None,
        diagnostics: vec![Diagnostic {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            severity: Severity::Error,
            message: limits::too_large(size),
            snippet: String::new(),
        }],
    }
}

/// The `*.md` files of a folder, in name order.
pub fn issue_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading issues folder {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads every file and checks them together, as `herald check` does
/// before rendering: each file's own findings, then those across files
/// (numbers and slugs used twice). Returns the issues that parsed and every
/// diagnostic; rendering problems are the render stage's to add.
pub fn check_files(files: &[PathBuf], base: &Url) -> anyhow::Result<(Vec<Issue>, Vec<Diagnostic>)> {
    let mut diagnostics = Vec::new();
    let mut issues = Vec::new();
    for file in files {
        let checked = read_issue(file, base)?;
        diagnostics.extend(checked.diagnostics);
        issues.extend(checked.issue);
    }
    diagnostics.extend(check_collection(&issues));
    Ok((issues, diagnostics))
}

/// Problems that only show across issues: two files claiming one number or
/// one slug (and so one archive page).
pub fn check_collection(issues: &[Issue]) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let mut numbers: HashMap<u32, &Issue> = HashMap::new();
    let mut slugs: HashMap<&IssueSlug, &Issue> = HashMap::new();
    for issue in issues {
        let diag = |line: usize, message: String| Diagnostic {
            path: issue.source.clone(),
            line,
            column: 1,
            severity: Severity::Error,
            message,
            snippet: String::new(),
        };
        if let Some(first) = numbers.insert(issue.number, issue) {
            diagnostics.push(diag(
                issue.number_line,
                format!(
                    "issue number {} is already used by {}",
                    issue.number,
                    first.source.display()
                ),
            ));
        }
        if let Some(first) = slugs.insert(&issue.slug, issue) {
            diagnostics.push(diag(
                issue.slug_line,
                format!(
                    "slug \"{}\" is already used by {}",
                    issue.slug,
                    first.source.display()
                ),
            ));
        }
    }
    diagnostics
}

/// Every issue of a folder, newest (highest number) first, for `build` and
/// `serve`. Any error in any file fails the whole load, with all diagnostics.
pub fn load_folder(dir: &Path, base: &Url) -> anyhow::Result<Result<Vec<Issue>, Vec<Diagnostic>>> {
    let mut issues = Vec::new();
    let mut errors = Vec::new();
    for path in issue_files(dir)? {
        let checked = read_issue(&path, base)?;
        errors.extend(checked.diagnostics.into_iter().filter(Diagnostic::is_error));
        issues.extend(checked.issue);
    }
    errors.extend(check_collection(&issues));
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    issues.sort_by_key(|issue| std::cmp::Reverse(issue.number));
    Ok(Ok(issues))
}
