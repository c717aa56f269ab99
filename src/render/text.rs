//! Plain text wrapped by display width: a CJK character takes two columns.

use textwrap::core::Word;
use textwrap::{Options, WordSeparator, WordSplitter};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::issue::TextBlock;

/// Columns of the text part; 72 leaves room for "> " quoting in replies.
pub const TEXT_WIDTH: usize = 72;

/// Wraps `text` to `width` display columns. Long words (URLs) are kept
/// whole: a broken link is worse than a long line. Lines may break between
/// any two CJK characters, as Chinese has no spaces.
pub fn wrap_text(text: &str, width: usize, first: &str, rest: &str) -> String {
    let options = Options::new(width)
        .break_words(false)
        // Hyphenation would split "Pilot-discovery" and URLs at their dashes.
        .word_splitter(WordSplitter::NoHyphenation)
        .word_separator(WordSeparator::Custom(cjk_aware_words))
        .initial_indent(first)
        .subsequent_indent(rest);
    text.split('\n')
        .map(|line| textwrap::fill(line, &options))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Splits a line where it may wrap: after spaces, and around wide (CJK)
/// characters. textwrap's UAX #14 separator would also break after every
/// `/` and `?`, cutting URLs in half, so this is ours. Closing punctuation
/// stays with the character before it and opening punctuation with the one
/// after (the basic rule of Chinese line breaking).
fn cjk_aware_words(line: &str) -> Box<dyn Iterator<Item = Word<'_>> + '_> {
    let mut words = Vec::new();
    let mut start = 0;
    let mut chars = line.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        let Some(&(next_at, next)) = chars.peek() else {
            break;
        };
        let wide = |c: char| c.width() == Some(2);
        let at_space = c == ' ' && next != ' ';
        let beside_wide = c != ' ' && next != ' ' && (wide(c) || wide(next));
        let may_break = !is_closing(next) && !is_opening(c) && (at_space || beside_wide);
        if may_break {
            words.push(Word::from(&line[start..next_at]));
            start = next_at;
        }
    }
    if start < line.len() {
        words.push(Word::from(&line[start..]));
    }
    Box::new(words.into_iter())
}

fn is_closing(c: char) -> bool {
    matches!(
        c,
        '，' | '。'
            | '、'
            | '；'
            | '：'
            | '！'
            | '？'
            | '）'
            | '」'
            | '』'
            | '》'
            | '〉'
            | '】'
            | '”'
            | '’'
            | '…'
            | ','
            | '.'
            | ';'
            | ':'
            | '!'
            | '?'
            | ')'
    )
}

fn is_opening(c: char) -> bool {
    matches!(c, '（' | '「' | '『' | '《' | '〈' | '【' | '“' | '‘' | '(')
}

pub fn blocks_to_text(blocks: &[TextBlock], width: usize) -> String {
    let mut out = String::new();
    let mut previous_was_list = false;
    for block in blocks {
        let is_list = matches!(block, TextBlock::ListItem { .. });
        if !out.is_empty() {
            out.push_str(if is_list && previous_was_list {
                "\n"
            } else {
                "\n\n"
            });
        }
        previous_was_list = is_list;
        match block {
            TextBlock::Paragraph(text) | TextBlock::Heading(text) => {
                out.push_str(&wrap_text(text, width, "", ""))
            }
            TextBlock::ListItem {
                depth,
                marker,
                text,
            } => {
                let indent = "  ".repeat(depth.saturating_sub(1));
                let first = if marker.is_empty() {
                    format!("{indent}  ")
                } else {
                    format!("{indent}{marker} ")
                };
                let rest = " ".repeat(first.width());
                out.push_str(&wrap_text(text, width, &first, &rest));
            }
            TextBlock::Code(code) => {
                let indented: Vec<String> = code.lines().map(|l| format!("    {l}")).collect();
                out.push_str(&indented.join("\n"));
            }
            TextBlock::Quote(text) => out.push_str(&wrap_text(text, width, "> ", "> ")),
            TextBlock::Rule => out.push_str("----"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_counts_two_columns() {
        let text = "云原生".repeat(20); // 60 characters, 120 columns
        let wrapped = wrap_text(&text, 72, "", "");
        for line in wrapped.lines() {
            assert!(line.width() <= 72, "{line:?} is {} wide", line.width());
        }
        assert_eq!(wrapped.lines().count(), 2);
        assert_eq!(wrapped.replace('\n', ""), text);
    }

    #[test]
    fn urls_are_never_broken() {
        let url = format!("https://example.com/the-{}-path?a=b", "a".repeat(100));
        let wrapped = wrap_text(&format!("see {url} now"), 72, "", "");
        assert!(wrapped.lines().any(|l| l == url), "{wrapped}");
    }

    #[test]
    fn chinese_punctuation_never_starts_a_line() {
        let text = "这是一个很长的句子，".repeat(12);
        for line in wrap_text(&text, 30, "", "").lines() {
            assert!(!line.starts_with('，'), "{line}");
            assert!(line.width() <= 30);
        }
    }

    #[test]
    fn list_items_hang_under_their_marker() {
        let blocks = [TextBlock::ListItem {
            depth: 1,
            marker: "-".into(),
            text: "word ".repeat(30),
        }];
        let text = blocks_to_text(&blocks, 40);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("- word"));
        assert!(lines[1].starts_with("  word"));
    }
}
