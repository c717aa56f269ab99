//! The body of an issue: Markdown split into an intro, `##` sections and
//! `###` items, each rendered once to clean HTML and to plain-text blocks.

use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use url::Url;

use super::diagnostic::{Diagnostic, SourceMap};
use super::text::TextBuilder;
use super::{Body, Item, Section};

/// Markers the renderer substitutes per recipient; an issue must not contain
/// them, or a reader could be shown someone else's unsubscribe link.
pub const RESERVED_MARKER: &str = "%%herald:";

pub struct ParsedBody {
    pub intro: Body,
    pub sections: Vec<Section>,
}

enum Target {
    Intro,
    SectionIntro,
    Item,
}

struct Walker<'m> {
    map: &'m SourceMap<'m>,
    base: &'m Url,
    diagnostics: Vec<Diagnostic>,
    intro: Body,
    sections: Vec<Section>,
    target: Target,
    html_events: Vec<Event<'static>>,
    text: TextBuilder,
    /// Where the current item's heading starts, for the "no body" warning.
    item_offset: usize,
    body_start: usize,
    reported_marker: bool,
}

pub fn parse(
    body: &str,
    body_offset: usize,
    map: &SourceMap,
    base: &Url,
) -> (ParsedBody, Vec<Diagnostic>) {
    let mut walker = Walker {
        map,
        base,
        diagnostics: Vec::new(),
        intro: Body::default(),
        sections: Vec::new(),
        target: Target::Intro,
        html_events: Vec::new(),
        text: TextBuilder::default(),
        item_offset: 0,
        body_start: body_offset,
        reported_marker: false,
    };
    if let Some(pos) = body.find(RESERVED_MARKER) {
        walker.reported_marker = true;
        walker.diagnostics.push(map.error(
            body_offset + pos,
            format!("`{RESERVED_MARKER}` is reserved for per-recipient values"),
        ));
    }
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut events = Parser::new_ext(body, options).into_offset_iter();
    while let Some((event, range)) = events.next() {
        let at = body_offset + range.start;
        match event {
            Event::Start(Tag::Heading { level, .. }) if level <= HeadingLevel::H3 => {
                let mut inner = Vec::new();
                for (event, range) in events.by_ref() {
                    if matches!(event, Event::End(TagEnd::Heading(_))) {
                        break;
                    }
                    inner.push((event, body_offset + range.start));
                }
                walker.heading(level, at, inner);
            }
            other => walker.body_event(other, at),
        }
    }
    walker.finish_body();
    for section in &walker.sections {
        if section.items.is_empty() {
            walker.diagnostics.push(map.error(
                section.offset,
                format!(
                    "section \"{}\" is empty: it has no `###` item",
                    section.title
                ),
            ));
        }
    }
    if walker.sections.is_empty() {
        walker
            .diagnostics
            .push(map.warning(body_offset, "the issue has no `##` section"));
    }
    let parsed = ParsedBody {
        intro: walker.intro,
        sections: walker.sections,
    };
    (parsed, walker.diagnostics)
}

impl Walker<'_> {
    fn heading(&mut self, level: HeadingLevel, at: usize, inner: Vec<(Event<'_>, usize)>) {
        self.finish_body();
        let title = heading_text(&inner);
        if title.is_empty() {
            self.diagnostics
                .push(self.map.error(at, "heading has no text"));
        }
        match level {
            HeadingLevel::H1 => {
                self.diagnostics.push(self.map.error(
                    at,
                    "`#` headings are not used in an issue: `##` starts a section, `###` an item",
                ));
            }
            HeadingLevel::H2 => {
                self.sections.push(Section {
                    title,
                    intro: Body::default(),
                    items: Vec::new(),
                    offset: at,
                });
                self.target = Target::SectionIntro;
            }
            _ => {
                let url = self.item_link(&inner, at);
                match self.sections.last_mut() {
                    Some(section) => {
                        section.items.push(Item {
                            title,
                            url,
                            body: Body::default(),
                        });
                        self.target = Target::Item;
                        self.item_offset = at;
                    }
                    None => {
                        self.diagnostics.push(self.map.error(
                            at,
                            format!("item \"{title}\" is outside a section: put a `##` section heading before it"),
                        ));
                        self.target = Target::Intro;
                    }
                }
            }
        }
    }

    /// An item heading that is one link, and nothing else, gives the item its URL.
    fn item_link(&mut self, inner: &[(Event<'_>, usize)], at: usize) -> Option<Url> {
        let significant: Vec<&(Event, usize)> = inner
            .iter()
            .filter(|(e, _)| !matches!(e, Event::Text(t) if t.trim().is_empty()))
            .collect();
        let (first, last) = (significant.first()?, significant.last()?);
        let Event::Start(Tag::Link { dest_url, .. }) = &first.0 else {
            if inner
                .iter()
                .any(|(e, _)| matches!(e, Event::Start(Tag::Link { .. })))
            {
                self.diagnostics.push(self.map.warning(
                    at,
                    "item heading has text outside its link, so the item gets no URL",
                ));
            }
            return None;
        };
        let link_ends = significant
            .iter()
            .filter(|(e, _)| matches!(e, Event::End(TagEnd::Link)))
            .count();
        if !matches!(last.0, Event::End(TagEnd::Link)) || link_ends != 1 {
            self.diagnostics.push(self.map.warning(
                at,
                "item heading has text outside its link, so the item gets no URL",
            ));
            return None;
        }
        let url = self.resolve_link(dest_url, first.1)?;
        if !matches!(url.scheme(), "http" | "https") {
            self.diagnostics.push(self.map.error(
                first.1,
                format!("item link must be http or https, found `{dest_url}`"),
            ));
            return None;
        }
        Some(url)
    }

    /// Makes a link absolute against the site's base URL and refuses the
    /// schemes a reader should never be sent to (javascript:, data:, file:).
    fn resolve_link(&mut self, dest: &str, at: usize) -> Option<Url> {
        let dest = dest.trim();
        let resolved = match Url::parse(dest) {
            Ok(url) => url,
            Err(url::ParseError::RelativeUrlWithoutBase) => match self.base.join(dest) {
                Ok(url) => url,
                Err(e) => {
                    self.diagnostics
                        .push(self.map.error(at, format!("invalid link `{dest}`: {e}")));
                    return None;
                }
            },
            Err(e) => {
                self.diagnostics
                    .push(self.map.error(at, format!("invalid link `{dest}`: {e}")));
                return None;
            }
        };
        if !matches!(resolved.scheme(), "http" | "https" | "mailto") {
            self.diagnostics.push(
                self.map
                    .error(at, format!("link `{dest}` is not http(s) or mailto")),
            );
            return None;
        }
        Some(resolved)
    }

    fn body_event(&mut self, event: Event<'_>, at: usize) {
        let event = match event {
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Link {
                link_type,
                dest_url: self.resolved(&dest_url, at),
                title,
                id,
            }),
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Image {
                link_type,
                dest_url: self.resolved(&dest_url, at),
                title,
                id,
            }),
            other => other,
        };
        self.text.push(&event);
        self.html_events.push(event.into_static());
    }

    /// A link or image target made absolute; empty when it was refused
    /// (the diagnostic says why).
    fn resolved(&mut self, dest: &str, at: usize) -> CowStr<'static> {
        let url = self.resolve_link(dest, at);
        CowStr::from(url.map(String::from).unwrap_or_default())
    }

    /// Closes the body being collected and stores it where it belongs.
    fn finish_body(&mut self) {
        let events = std::mem::take(&mut self.html_events);
        let mut html = String::new();
        pulldown_cmark::html::push_html(&mut html, events.into_iter());
        let body = Body {
            html: clean_html(&html, self.base),
            text: std::mem::take(&mut self.text).finish(),
        };
        // Escapes (`%\%herald:`) can make the marker appear only once rendered.
        let rendered_marker = body.html.contains(RESERVED_MARKER)
            || body
                .text
                .iter()
                .any(|block| format!("{block:?}").contains(RESERVED_MARKER));
        if rendered_marker && !self.reported_marker {
            self.reported_marker = true;
            self.diagnostics.push(self.map.error(
                self.body_start,
                format!("`{RESERVED_MARKER}` is reserved for per-recipient values"),
            ));
        }
        match self.target {
            Target::Intro => {
                if self.intro.is_empty() {
                    self.intro = body;
                }
            }
            Target::SectionIntro => {
                if let Some(section) = self.sections.last_mut() {
                    section.intro = body;
                }
            }
            Target::Item => {
                let section = self.sections.last_mut().expect("an item has a section");
                let item = section.items.last_mut().expect("target is an item");
                if body.is_empty() {
                    self.diagnostics.push(self.map.warning(
                        self.item_offset,
                        format!("item \"{}\" has no body", item.title),
                    ));
                }
                item.body = body;
            }
        }
    }
}

fn heading_text(inner: &[(Event<'_>, usize)]) -> String {
    let mut title = String::new();
    for (event, _) in inner {
        match event {
            Event::Text(t) | Event::Code(t) => title.push_str(t),
            Event::SoftBreak | Event::HardBreak => title.push(' '),
            _ => {}
        }
    }
    title.trim().to_string()
}

/// Raw HTML in an issue is allowed but cleaned: scripts, styles, event
/// handlers and unknown schemes go; relative URLs become absolute.
fn clean_html(html: &str, base: &Url) -> String {
    if html.is_empty() {
        return String::new();
    }
    ammonia::Builder::default()
        .url_relative(ammonia::UrlRelative::RewriteWithBase(base.clone()))
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .clean(html)
        .to_string()
}
