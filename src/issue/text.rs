//! Markdown events to plain-text blocks for the email's text part.
//!
//! Written by hand: html2text and friends would re-parse the HTML we just
//! produced and lose the structure we need (list depth, code blocks that
//! must not wrap, links shown beside their text). Wrapping by display width
//! happens later, in the renderer, with `textwrap`.

use pulldown_cmark::{Event, Tag, TagEnd};
use serde::Serialize;
use unicode_width::UnicodeWidthChar;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TextBlock {
    Paragraph(String),
    /// A list item at `depth` (1 for a top-level list) with its marker
    /// ("-", "3."); the marker is empty for an item's later paragraphs.
    ListItem {
        depth: usize,
        marker: String,
        text: String,
    },
    /// Preformatted: never wrapped.
    Code(String),
    Quote(String),
    Heading(String),
    Rule,
}

#[derive(Default)]
pub struct TextBuilder {
    blocks: Vec<TextBlock>,
    inline: String,
    /// One entry per open list: the next number for ordered lists.
    lists: Vec<Option<u64>>,
    pending_marker: Option<String>,
    quote_depth: usize,
    code: Option<String>,
    /// Open links: their target and where their text starts in `inline`.
    links: Vec<(String, usize)>,
    /// Open images: inside one, text (even what looks like a tag) is alt text.
    images: usize,
    /// The raw HTML of the block being read, turned into text at its end.
    html_block: String,
}

impl TextBuilder {
    pub fn push(&mut self, event: &Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(*tag),
            Event::Text(t) => match &mut self.code {
                Some(code) => code.push_str(t),
                None => self.inline.push_str(t),
            },
            Event::Code(t) => self.inline.push_str(t),
            Event::SoftBreak => {
                // A line break inside a Chinese paragraph is not a space.
                let wide = self.inline.chars().last().and_then(|c| c.width()) == Some(2);
                if !wide {
                    self.inline.push(' ');
                }
            }
            Event::HardBreak => self.inline.push('\n'),
            Event::Rule => {
                self.flush();
                self.blocks.push(TextBlock::Rule);
            }
            Event::TaskListMarker(done) => {
                self.inline.push_str(if *done { "[x] " } else { "[ ] " })
            }
            Event::Html(html) => self.html_block.push_str(html),
            Event::InlineHtml(html) if self.images > 0 => self.inline.push_str(html),
            Event::InlineHtml(html) if is_line_break(html) => self.inline.push('\n'),
            // Other inline tags: their text arrives as Text events.
            _ => {}
        }
    }

    fn start(&mut self, tag: &Tag<'_>) {
        match tag {
            Tag::List(first) => {
                self.flush();
                self.lists.push(*first);
            }
            Tag::Item => {
                self.flush();
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let marker = format!("{n}.");
                        *n += 1;
                        marker
                    }
                    _ => "-".to_string(),
                };
                self.pending_marker = Some(marker);
            }
            Tag::CodeBlock(_) => {
                self.flush();
                self.code = Some(String::new());
            }
            Tag::BlockQuote(_) => {
                self.flush();
                self.quote_depth += 1;
            }
            Tag::Link { dest_url, .. } => {
                self.links.push((dest_url.to_string(), self.inline.len()))
            }
            Tag::Image { .. } => {
                self.images += 1;
                self.inline.push('[');
            }
            Tag::HtmlBlock => self.flush(),
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::Item | TagEnd::TableRow | TagEnd::TableHead => self.flush(),
            TagEnd::Heading(_) => {
                let text = std::mem::take(&mut self.inline).trim().to_string();
                if !text.is_empty() {
                    self.blocks.push(TextBlock::Heading(text));
                }
            }
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
            }
            TagEnd::CodeBlock => {
                if let Some(code) = self.code.take() {
                    self.blocks
                        .push(TextBlock::Code(code.trim_end().to_string()));
                }
            }
            TagEnd::BlockQuote(_) => {
                self.flush();
                self.quote_depth = self.quote_depth.saturating_sub(1);
            }
            TagEnd::TableCell => self.inline.push_str(" | "),
            TagEnd::Link => {
                if let Some((dest, start)) = self.links.pop() {
                    let shown = self.inline[start..].trim();
                    let target = dest.strip_prefix("mailto:").unwrap_or(&dest);
                    if !dest.is_empty() && shown != target {
                        self.inline.push_str(&format!(" ({target})"));
                    }
                }
            }
            TagEnd::Image => {
                self.images = self.images.saturating_sub(1);
                self.inline.push(']');
            }
            TagEnd::HtmlBlock => {
                let html = std::mem::take(&mut self.html_block);
                for line in html_to_text(&html) {
                    self.inline = line;
                    self.flush();
                }
            }
            _ => {}
        }
    }

    fn flush(&mut self) {
        let text = std::mem::take(&mut self.inline);
        let text = text.trim().trim_end_matches(" |").trim().to_string();
        if text.is_empty() {
            return;
        }
        let block = if !self.lists.is_empty() {
            TextBlock::ListItem {
                depth: self.lists.len(),
                marker: self.pending_marker.take().unwrap_or_default(),
                text,
            }
        } else if self.quote_depth > 0 {
            TextBlock::Quote(text)
        } else {
            TextBlock::Paragraph(text)
        };
        self.blocks.push(block);
    }

    pub fn finish(mut self) -> Vec<TextBlock> {
        self.flush();
        self.blocks
    }
}

fn is_line_break(html: &str) -> bool {
    let name = html
        .trim_start_matches('<')
        .trim_end_matches(['>', '/', ' ']);
    name.eq_ignore_ascii_case("br")
}

/// Tags that end a line of text: blocks, rows and breaks.
const LINE_TAGS: [&str; 20] = [
    "p",
    "div",
    "br",
    "tr",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "ul",
    "ol",
    "blockquote",
    "pre",
    "section",
    "article",
    "header",
    "footer",
];

/// The text of a raw HTML block, one entry per line: what a reader of the
/// text part should see of a `<div>` or `<table>` written into an issue.
/// The tags go by ammonia (which drops scripts and styles with their
/// content); only where lines and cells break is decided here.
fn html_to_text(html: &str) -> Vec<String> {
    let mut marked = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        marked.push_str(&rest[..open]);
        let tag = &rest[open..];
        let name: String = tag
            .trim_start_matches(['<', '/'])
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        if LINE_TAGS.contains(&name.as_str()) {
            marked.push('\n');
        } else if tag.starts_with("</") && matches!(name.as_str(), "td" | "th") {
            marked.push_str(" | ");
        }
        marked.push('<');
        rest = &tag[1..];
    }
    marked.push_str(rest);
    let text = ammonia::Builder::empty().clean(&marked).to_string();
    // ammonia escapes text with exactly these entities.
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .map(|line| {
            line.trim_end_matches(" |")
                .trim_end_matches('|')
                .trim()
                .to_string()
        })
        .filter(|line| !line.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulldown_cmark::Parser;

    fn blocks(markdown: &str) -> Vec<TextBlock> {
        let mut builder = TextBuilder::default();
        for event in Parser::new(markdown) {
            builder.push(&event);
        }
        builder.finish()
    }

    #[test]
    fn links_show_their_target_and_cjk_lines_join_without_space() {
        let got =
            blocks("读一读[这篇文章](https://a.example/x)。\n很好。\n\nsee\nhttps://b.example");
        assert_eq!(
            got,
            vec![
                TextBlock::Paragraph("读一读这篇文章 (https://a.example/x)。很好。".into()),
                TextBlock::Paragraph("see https://b.example".into()),
            ]
        );
    }

    #[test]
    fn lists_nest_and_number() {
        let got = blocks("1. one\n2. two\n   - inner\n");
        assert_eq!(
            got,
            vec![
                TextBlock::ListItem {
                    depth: 1,
                    marker: "1.".into(),
                    text: "one".into()
                },
                TextBlock::ListItem {
                    depth: 1,
                    marker: "2.".into(),
                    text: "two".into()
                },
                TextBlock::ListItem {
                    depth: 2,
                    marker: "-".into(),
                    text: "inner".into()
                },
            ]
        );
    }

    #[test]
    fn raw_html_blocks_keep_their_text_by_line_and_cell() {
        let got = blocks(
            "<div class=\"note\">A <b>boxed</b> note &amp; more</div>\n\n<table><tr><th>Name</th><th>Size</th></tr><tr><td>a</td><td>1</td></tr></table>\n\n<script>alert(1)</script>\n",
        );
        assert_eq!(
            got,
            vec![
                TextBlock::Paragraph("A boxed note & more".into()),
                TextBlock::Paragraph("Name | Size".into()),
                TextBlock::Paragraph("a | 1".into()),
            ]
        );
    }

    #[test]
    fn alt_text_keeps_what_looks_like_a_tag() {
        let got = blocks("![A diagram <with> & special \"alt\" text](https://x.example/i.png)\n");
        assert_eq!(
            got,
            vec![TextBlock::Paragraph(
                "[A diagram <with> & special \"alt\" text]".into()
            )]
        );
    }

    #[test]
    fn code_blocks_keep_their_lines() {
        let got = blocks("```\nfn main() {\n    x\n}\n```\n");
        assert_eq!(got, vec![TextBlock::Code("fn main() {\n    x\n}".into())]);
    }
}
