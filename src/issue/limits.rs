//! Limits that keep a broken or hostile issue file from reaching the
//! renderer: a size cap, no control characters, bounded nesting. Each is
//! checked before the Markdown is walked, so an issue that `check` accepts
//! can always be rendered (mrml rejects control characters as invalid XML,
//! and the HTML sanitiser and mrml recurse once per nesting level).

use pulldown_cmark::{Event, Options, Parser};

use super::diagnostic::{Diagnostic, SourceMap};

/// An issue file's largest size. Gmail clips an email at 102 KB, so a real
/// issue is far below this; the cap keeps memory bounded (a 13 MB table
/// used about 235 times its size while rendering).
pub const MAX_ISSUE_BYTES: usize = 1024 * 1024;

/// The deepest nesting of lists, quotes and HTML elements. Real issues nest
/// three or four levels; thousands overflow the renderer's stack.
pub const MAX_NESTING: usize = 32;

/// Control characters reported per file; one is enough to fix the rest.
const MAX_REPORTED: usize = 3;

/// The message for a file over [`MAX_ISSUE_BYTES`].
pub fn too_large(size: u64) -> String {
    format!(
        "the file is {size} bytes; an issue may be at most {} KiB (Gmail clips an email at 102 KB)",
        MAX_ISSUE_BYTES / 1024
    )
}

/// C0 controls other than tab, line feed and carriage return, DEL, and C1
/// controls: none can appear in the XML that MJML is, nor usefully in mail.
fn is_forbidden_control(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{7f}'
}

/// The first forbidden control character in a value, e.g. one a TOML
/// escape (`\e`, `\u001B`) put into a front-matter string, which the check
/// of the raw text cannot see.
pub fn first_control(value: &str) -> Option<char> {
    value.chars().find(|c| is_forbidden_control(*c))
}

pub fn control_characters(text: &str, map: &SourceMap) -> Vec<Diagnostic> {
    text.char_indices()
        .filter(|(_, c)| is_forbidden_control(*c))
        .take(MAX_REPORTED)
        .map(|(at, c)| {
            map.error(
                at,
                format!(
                    "control character U+{:04X} is not allowed in an issue; delete it",
                    u32::from(c)
                ),
            )
        })
        .collect()
}

/// HTML elements that never hold others, or that the HTML parser closes by
/// itself, so that they do not count as nesting.
const SELF_CLOSING: [&str; 22] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "option", "!--",
];

/// How raw HTML changes the nesting depth: +1 per opening tag, -1 per
/// closing tag. An estimate (an unclosed `<div>` counts until the end), so
/// the limit it is held to is generous.
fn html_depth_change(html: &str) -> i64 {
    let mut change = 0;
    for tag in html.split('<').skip(1) {
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!' || *c == '-')
            .collect::<String>()
            .to_ascii_lowercase();
        if name.is_empty() || SELF_CLOSING.contains(&name.as_str()) {
            continue;
        }
        let self_closed = tag.split('>').next().is_some_and(|t| t.ends_with('/'));
        if closing {
            change -= 1;
        } else if !self_closed {
            change += 1;
        }
    }
    change
}

/// The first place the Markdown (and the raw HTML in it) nests deeper than
/// [`MAX_NESTING`].
pub fn nesting(body: &str, body_offset: usize, map: &SourceMap) -> Option<Diagnostic> {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut depth: i64 = 0;
    for (event, range) in Parser::new_ext(body, options).into_offset_iter() {
        match event {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth -= 1,
            Event::Html(html) | Event::InlineHtml(html) => {
                depth = (depth + html_depth_change(&html)).max(0);
            }
            _ => {}
        }
        if depth > MAX_NESTING as i64 {
            return Some(map.error(
                body_offset + range.start,
                format!("lists, quotes or HTML nest more than {MAX_NESTING} levels deep here"),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn html_depth_counts_containers_not_void_or_self_closing_tags() {
        assert_eq!(html_depth_change("<div><span>x</span>"), 1);
        assert_eq!(html_depth_change("<br><img src=x><hr/><p>a<p>b"), 0);
        assert_eq!(html_depth_change("</div></div>"), -2);
        assert_eq!(html_depth_change("<custom-el/><!-- note -->a < b"), 0);
    }

    #[test]
    fn deep_lists_are_refused_and_shallow_ones_pass() {
        let map_text = "- ".repeat(5000) + "x\n";
        let map = SourceMap::new(Path::new("f.md"), &map_text);
        let diagnostic = nesting(&map_text, 0, &map).expect("refused");
        assert!(
            diagnostic.message.contains("32 levels"),
            "{}",
            diagnostic.message
        );
        let fine = "- a\n  - b\n    - c\n\n> quote\n";
        let map = SourceMap::new(Path::new("f.md"), fine);
        assert!(nesting(fine, 0, &map).is_none());
    }

    #[test]
    fn deep_html_is_refused() {
        let html = "<div>".repeat(100) + "x";
        let map = SourceMap::new(Path::new("f.md"), &html);
        assert!(nesting(&html, 0, &map).is_some());
    }

    #[test]
    fn control_characters_are_named_with_their_code() {
        let text = "ok\n### a\u{8}b\u{0}c\n\u{1b}";
        let map = SourceMap::new(Path::new("f.md"), text);
        let found = control_characters(text, &map);
        let messages: Vec<String> = found
            .iter()
            .map(|d| format!("{}:{}", d.line, d.column))
            .collect();
        assert_eq!(messages, ["2:6", "2:8", "3:1"]);
        assert!(found[0].message.contains("U+0008"));
        assert!(control_characters("tab\tand\r\nnewline", &map).is_empty());
    }
}
