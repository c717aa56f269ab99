//! Splitting the `+++` TOML front matter off an issue and validating it.

use std::ops::Range;

use chrono::NaiveDate;
use serde::Deserialize;
use toml::Spanned;

use super::diagnostic::{Diagnostic, SourceMap};
use crate::domain::IssueSlug;

/// Where the front matter and the body sit in the file.
pub struct Split<'a> {
    pub toml: &'a str,
    /// Byte offset of `toml` in the file.
    pub toml_offset: usize,
    pub body: &'a str,
    pub body_offset: usize,
}

pub fn split<'a>(text: &'a str, map: &SourceMap) -> Result<Split<'a>, Diagnostic> {
    let text_no_bom = text.strip_prefix('\u{feff}').unwrap_or(text);
    let bom = text.len() - text_no_bom.len();
    let first_line = text_no_bom.lines().next().unwrap_or("");
    if first_line.trim_end() != "+++" {
        return Err(map.error(
            bom,
            "an issue must start with a `+++` line opening the TOML front matter",
        ));
    }
    let toml_offset = bom + first_line.len() + line_ending_len(&text_no_bom[first_line.len()..]);
    let mut offset = toml_offset;
    for line in text[toml_offset..].split_inclusive('\n') {
        if line.trim_end() == "+++" {
            let body_offset = offset + line.len();
            return Ok(Split {
                toml: &text[toml_offset..offset],
                toml_offset,
                body: &text[body_offset..],
                body_offset,
            });
        }
        offset += line.len();
    }
    Err(map.error(
        bom,
        "the front matter opened here is never closed by a `+++` line",
    ))
}

fn line_ending_len(rest: &str) -> usize {
    if rest.starts_with("\r\n") {
        2
    } else if rest.starts_with('\n') {
        1
    } else {
        0
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFrontMatter {
    title: Spanned<String>,
    number: Spanned<i64>,
    date: Spanned<toml::value::Datetime>,
    summary: Option<Spanned<String>>,
    #[serde(default)]
    authors: Vec<String>,
    editor: Option<String>,
    slug: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FrontMatter {
    pub title: String,
    pub number: u32,
    pub date: NaiveDate,
    pub summary: Option<String>,
    pub authors: Vec<String>,
    pub editor: Option<String>,
    pub slug: IssueSlug,
    /// Lines of `number =` and `slug =`, for errors found across files.
    pub number_line: usize,
    pub slug_line: usize,
}

/// serde's messages name Rust types ("expected i64", "as i128"); an editor
/// should read what to write instead.
fn in_plain_words(message: &str) -> String {
    let mut plain = message.to_string();
    for rust_type in ["i128", "i64", "u64", "u32"] {
        plain = plain
            .replace(&format!("expected {rust_type}"), "expected a whole number")
            .replace(&format!("as {rust_type}"), "as a whole number");
    }
    plain
        .replace("expected a sequence", "expected a list")
        .replace("a borrowed string", "a string")
}

/// Parses and validates the front matter. `default_slug` is the file stem.
pub fn parse(
    split: &Split,
    map: &SourceMap,
    default_slug: &str,
) -> Result<FrontMatter, Vec<Diagnostic>> {
    let at = |span: Range<usize>| split.toml_offset + span.start;
    if let Some(pos) = split.toml.find(super::RESERVED_MARKER) {
        return Err(vec![map.error(
            split.toml_offset + pos,
            format!(
                "`{}` is reserved for per-recipient values",
                super::RESERVED_MARKER
            ),
        )]);
    }
    let raw: RawFrontMatter = toml::from_str(split.toml).map_err(|e| {
        let offset = e.span().map(at).unwrap_or(split.toml_offset);
        // toml's message repeats the source excerpt; keep only its first line.
        let message = e.message().lines().next().unwrap_or("invalid TOML");
        vec![map.error(offset, format!("front matter: {}", in_plain_words(message)))]
    })?;

    let mut errors = Vec::new();
    let title = raw.title.get_ref().trim().to_string();
    if title.is_empty() {
        errors.push(map.error(at(raw.title.span()), "`title` must not be empty"));
    }
    let number = match u32::try_from(*raw.number.get_ref()) {
        Ok(n) if n > 0 => n,
        _ => {
            errors.push(map.error(
                at(raw.number.span()),
                format!(
                    "`number` must be a positive whole number, found {}",
                    raw.number.get_ref()
                ),
            ));
            0
        }
    };
    let date = match raw.date.get_ref() {
        toml::value::Datetime {
            date: Some(d),
            offset: None,
            time: None,
        } => NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day)),
        _ => None,
    };
    let date = date.unwrap_or_else(|| {
        errors.push(map.error(
            at(raw.date.span()),
            format!(
                "`date` must be a plain date like 2019-04-15, found {}",
                raw.date.get_ref()
            ),
        ));
        NaiveDate::MIN
    });
    let summary = raw.summary.as_ref().map(|s| s.get_ref().trim().to_string());
    let (slug_text, slug_offset) = match &raw.slug {
        Some(s) => (s.get_ref().clone(), at(s.span())),
        None => (default_slug.to_string(), split.toml_offset),
    };
    let slug = match IssueSlug::parse(&slug_text) {
        Ok(slug) => Some(slug),
        Err(e) => {
            let hint = if raw.slug.is_none() {
                " (taken from the file name; set `slug` in the front matter)"
            } else {
                ""
            };
            errors.push(map.error(slug_offset, format!("{e}{hint}")));
            None
        }
    };
    for author in &raw.authors {
        if author.trim().is_empty() {
            errors.push(map.error(split.toml_offset, "`authors` has an empty name"));
        }
    }
    // Escapes put control characters into values after the raw text was
    // checked; the MJML (XML) of the email cannot hold them.
    let mut values = vec![("title", raw.title.get_ref().as_str(), at(raw.title.span()))];
    if let Some(summary) = &raw.summary {
        values.push(("summary", summary.get_ref().as_str(), at(summary.span())));
    }
    values.extend(
        raw.authors
            .iter()
            .map(|author| ("authors", author.as_str(), split.toml_offset)),
    );
    if let Some(editor) = &raw.editor {
        values.push(("editor", editor.as_str(), split.toml_offset));
    }
    for (field, value, offset) in values {
        if let Some(c) = super::limits::first_control(value) {
            errors.push(map.error(
                offset,
                format!(
                    "`{field}` holds control character U+{:04X} (written as an escape); remove it",
                    u32::from(c)
                ),
            ));
        }
    }
    match slug {
        Some(slug) if errors.is_empty() => Ok(FrontMatter {
            title,
            number,
            date,
            summary: summary.filter(|s| !s.is_empty()),
            authors: raw.authors.iter().map(|a| a.trim().to_string()).collect(),
            editor: raw
                .editor
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty()),
            slug,
            number_line: map.position(at(raw.number.span())).0,
            slug_line: map.position(slug_offset).0,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Escapes the raw-text check cannot see, in every free-text field (the
    /// fuzz targets found `\e` in a title and `\b` in another).
    #[test]
    fn escaped_control_characters_are_refused_in_every_text_field() {
        let base = url::Url::parse("https://news.example.com/").unwrap();
        let cases = [
            (
                "title = \"a\\bb\"",
                "`title` holds control character U+0008",
            ),
            (
                "title = \"t\"\nsummary = \"x\\u001By\"",
                "`summary` holds control character U+001B",
            ),
            (
                "title = \"t\"\nauthors = [\"Ann\", \"B\\u0085\"]",
                "`authors` holds control character U+0085",
            ),
            (
                "title = \"t\"\neditor = \"\\u007F\"",
                "`editor` holds control character U+007F",
            ),
        ];
        for (fields, expected) in cases {
            let text = format!(
                "+++\n{fields}\nnumber = 1\ndate = 2019-04-29\n+++\n## S\n\n### I\n\nBody.\n"
            );
            let checked = crate::issue::parse_issue(Path::new("x.md"), text.as_bytes(), &base);
            assert!(checked.issue.is_none(), "{fields}");
            assert!(
                checked
                    .diagnostics
                    .iter()
                    .any(|d| d.message.contains(expected)),
                "{fields}: {:?}",
                checked.diagnostics
            );
        }
    }
}
