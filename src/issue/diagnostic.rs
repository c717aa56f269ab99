//! Problems found in an issue file, each pointing at `file:line:column`.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters (not bytes), as editors count.
    pub column: usize,
    pub severity: Severity,
    pub message: String,
    /// The offending source line, shown under the message.
    pub snippet: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {kind}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )?;
        if !self.snippet.trim().is_empty() {
            write!(f, "\n    | {}", self.snippet)?;
        }
        Ok(())
    }
}

/// Maps byte offsets of a file to lines and columns, so every stage that
/// finds a problem can say where it is.
pub struct SourceMap<'a> {
    path: &'a Path,
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap {
            path,
            text,
            line_starts,
        }
    }

    /// 1-based line and character column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line_index = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line_index];
        let column = self.text[start..floor_char_boundary(self.text, offset)]
            .chars()
            .count()
            + 1;
        (line_index + 1, column)
    }

    pub fn line_text(&self, line: usize) -> &'a str {
        let start = self.line_starts[line - 1];
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }

    pub fn at(&self, offset: usize, severity: Severity, message: impl Into<String>) -> Diagnostic {
        let (line, column) = self.position(offset);
        Diagnostic {
            path: self.path.to_path_buf(),
            line,
            column,
            severity,
            message: message.into(),
            snippet: quote_line(self.line_text(line), column),
        }
    }

    pub fn error(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
        self.at(offset, Severity::Error, message)
    }

    pub fn warning(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
        self.at(offset, Severity::Warning, message)
    }
}

/// Characters of a line shown under a diagnostic: enough to see the
/// problem, never a megabyte-long line whole.
const SNIPPET_CHARS: usize = 160;

/// The part of `line` around `column` that a diagnostic shows, with control
/// characters made visible (`\u{1b}`), so a hostile file cannot drive the
/// terminal that prints it.
fn quote_line(line: &str, column: usize) -> String {
    let count = line.chars().count();
    let start = if count > SNIPPET_CHARS {
        column
            .saturating_sub(SNIPPET_CHARS / 2)
            .min(count - SNIPPET_CHARS)
    } else {
        0
    };
    let mut quoted = String::new();
    if start > 0 {
        quoted.push('…');
    }
    for c in line.chars().skip(start).take(SNIPPET_CHARS) {
        if c.is_control() && c != '\t' {
            quoted.push_str(&c.escape_unicode().to_string());
        } else {
            quoted.push(c);
        }
    }
    if start + SNIPPET_CHARS < count {
        quoted.push('…');
    }
    quoted
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_not_bytes() {
        let text = "ab\n中文x\n";
        let map = SourceMap::new(Path::new("f.md"), text);
        assert_eq!(map.position(0), (1, 1));
        assert_eq!(map.position(3), (2, 1));
        // 'x' follows two three-byte characters.
        assert_eq!(map.position(9), (2, 3));
        assert_eq!(map.line_text(2), "中文x");
    }

    #[test]
    fn long_lines_are_quoted_around_the_column_and_controls_escaped() {
        let line = "x".repeat(1_000_000);
        let quoted = quote_line(&line, 500_000);
        assert_eq!(quoted.chars().count(), SNIPPET_CHARS + 2);
        assert!(quoted.starts_with('…') && quoted.ends_with('…'));
        assert_eq!(quote_line("a\u{1b}[31mb", 1), "a\\u{1b}[31mb");
        assert_eq!(quote_line("short", 3), "short");
    }
}
