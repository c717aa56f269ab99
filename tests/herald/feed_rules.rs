//! The feeds against the rules of the W3C feed validator.
//!
//! The validator (feedvalidator, a Python program) is neither on PyPI nor
//! in Debian, so it cannot run here. Its checks that can apply to what
//! Herald writes are restated below, each under the validator's own name
//! for the message, and every error *and* warning among them fails: the
//! feeds are parsed by a strict XML parser (roxmltree), every HTML payload
//! by an HTML5 parser that reports parse errors (html5ever, as the
//! validator uses html5lib in strict mode), and all three feeds are read
//! back by a feed reader (feed-rs) as readers do. The checker is itself
//! tested on feeds that break each rule, so that it cannot pass by saying
//! nothing.

use std::collections::HashSet;

use html5ever::tendril::TendrilSink;
use markup5ever_rcdom::{Handle, NodeData, RcDom};
use regex::Regex;
use roxmltree::{Document, Node};

use crate::helpers::{stderr, Workspace};

const ATOM: &str = "http://www.w3.org/2005/Atom";
const CONTENT: &str = "http://purl.org/rss/1.0/modules/content/";
const DC: &str = "http://purl.org/dc/elements/1.1/";

/// Elements the validator accepts in HTML content without a SecurityRisk
/// warning (its list is longer; these are the ones an issue can produce
/// and then some). Anything else fails here.
const ACCEPTABLE_ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "address",
    "article",
    "aside",
    "b",
    "bdi",
    "blockquote",
    "br",
    "caption",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "details",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "i",
    "img",
    "input",
    "ins",
    "kbd",
    "li",
    "mark",
    "nav",
    "ol",
    "p",
    "picture",
    "pre",
    "q",
    "rp",
    "rt",
    "ruby",
    "s",
    "samp",
    "section",
    "small",
    "source",
    "span",
    "strike",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "time",
    "tr",
    "tt",
    "u",
    "ul",
    "var",
    "wbr",
];

/// Attributes the validator accepts without SecurityRiskAttr (a subset of
/// its list). `style` is never accepted here: the validator scrubs it
/// (DangerousStyleAttr) and a feed has no use for it.
const ACCEPTABLE_ATTRIBUTES: &[&str] = &[
    "abbr", "align", "alt", "checked", "cite", "class", "colspan", "datetime", "dir", "disabled",
    "headers", "height", "href", "hreflang", "id", "lang", "loading", "name", "rel", "reversed",
    "rowspan", "scope", "sizes", "span", "src", "srcset", "start", "title", "type", "value",
    "width",
];

/// Elements of HTML that are text-level or block markup: an end tag of one
/// in a plain-text element is "ContainsHTML".
const HTML_TAGS_IN_TEXT: &[&str] = &[
    "a", "b", "br", "div", "em", "i", "img", "li", "ol", "p", "script", "span", "strong", "table",
    "u", "ul",
];

/// What the validator would say, one line per message.
#[derive(Default, Debug)]
pub struct Report(Vec<String>);

impl Report {
    fn add(&mut self, rule: &str, what: impl std::fmt::Display) {
        self.0.push(format!("{rule}: {what}"));
    }
    fn has(&self, rule: &str) -> bool {
        self.0
            .iter()
            .any(|line| line.starts_with(&format!("{rule}:")))
    }
}

fn children<'a, 'i>(node: Node<'a, 'i>, ns: Option<&str>, name: &str) -> Vec<Node<'a, 'i>> {
    node.children()
        .filter(|c| c.is_element() && c.tag_name().name() == name && c.tag_name().namespace() == ns)
        .collect()
}

/// All the text of an element (CDATA included).
fn text_of(node: Node) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

/// The element's content as written in the file, between its tags.
fn raw_content<'i>(node: Node<'_, 'i>, xml: &'i str) -> &'i str {
    let whole = &xml[node.range()];
    match (whole.find('>'), whole.rfind("</")) {
        (Some(open), Some(close)) if close > open => &whole[open + 1..close],
        _ => "",
    }
}

fn is_absolute_http(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// The validator's `rfc2822_re`, then a real parse (which checks the day
/// of the week: IncorrectDOW) and plausibility (ImplausibleDate).
fn check_rfc2822(report: &mut Report, what: &str, value: &str) {
    let pattern = Regex::new(
        r"^((Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?\d\d? (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d(:\d\d)? ([+-]?\d\d[03]0|UT|GMT|EST|EDT|CST|CDT|MST|MDT|PST|PDT|Z)$",
    )
    .unwrap();
    if !pattern.is_match(value) {
        return report.add("InvalidRFC2822Date", format!("{what} {value:?}"));
    }
    match chrono::DateTime::parse_from_rfc2822(value) {
        Ok(time) => check_plausible(report, what, time.with_timezone(&chrono::Utc)),
        Err(e) => report.add("IncorrectDOW", format!("{what} {value:?}: {e}")),
    }
}

/// The validator's `rfc3339` pattern, a real parse and plausibility.
fn check_rfc3339(report: &mut Report, what: &str, value: &str) {
    let pattern =
        Regex::new(r"^\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*)?(Z|([+-]\d\d:\d\d))$").unwrap();
    match chrono::DateTime::parse_from_rfc3339(value) {
        Ok(time) if pattern.is_match(value) => {
            check_plausible(report, what, time.with_timezone(&chrono::Utc))
        }
        _ => report.add("InvalidRFC3339Date", format!("{what} {value:?}")),
    }
}

fn check_plausible(report: &mut Report, what: &str, time: chrono::DateTime<chrono::Utc>) {
    let earliest = chrono::DateTime::parse_from_rfc3339("1990-01-01T00:00:00Z").unwrap();
    if time < earliest || time > chrono::Utc::now() + chrono::Duration::minutes(10) {
        report.add("ImplausibleDate", format!("{what} {time}"));
    }
}

/// An HTML payload (an RSS description or content:encoded, an Atom
/// content of type html): it must parse without an HTML5 parse error
/// (NotHtml), hold only accepted elements (SecurityRisk) and attributes
/// (SecurityRiskAttr, DangerousStyleAttr), and only absolute links
/// (ContainsRelRef).
pub fn check_html(report: &mut Report, what: &str, html: &str) {
    let context =
        html5ever::QualName::new(None, html5ever::ns!(html), html5ever::local_name!("body"));
    let dom = html5ever::parse_fragment(
        RcDom::default(),
        html5ever::ParseOpts::default(),
        context,
        Vec::new(),
        false,
    )
    .one(html);
    for error in dom.errors.borrow().iter() {
        report.add("NotHtml", format!("{what}: {error}"));
    }
    walk_html(report, what, &dom.document);
}

fn walk_html(report: &mut Report, what: &str, node: &Handle) {
    if let NodeData::Element { name, attrs, .. } = &node.data {
        let tag = name.local.as_ref();
        // The fragment parser's own wrapper.
        if tag != "html" {
            if !ACCEPTABLE_ELEMENTS.contains(&tag) {
                report.add("SecurityRisk", format!("{what}: <{tag}>"));
            }
            for attr in attrs.borrow().iter() {
                let attr_name = attr.name.local.as_ref();
                let value = attr.value.as_ref();
                if attr_name == "style" {
                    report.add(
                        "DangerousStyleAttr",
                        format!("{what}: <{tag} style={value:?}>"),
                    );
                } else if !ACCEPTABLE_ATTRIBUTES.contains(&attr_name)
                    && !attr_name.starts_with("data-")
                {
                    report.add("SecurityRiskAttr", format!("{what}: <{tag} {attr_name}>"));
                }
                let is_link =
                    (tag == "a" && attr_name == "href") || (tag == "img" && attr_name == "src");
                let has_scheme = value.trim().split_once(':').is_some_and(|(scheme, _)| {
                    !scheme.is_empty() && scheme.chars().all(|c| c.is_alphanumeric() || c == '_')
                });
                if is_link && !has_scheme {
                    report.add("ContainsRelRef", format!("{what}: {attr_name}={value:?}"));
                }
            }
        }
    }
    for child in node.children.borrow().iter() {
        walk_html(report, what, child);
    }
}

/// A plain-text element (an RSS title, an Atom text construct): no HTML
/// end tag in its text (ContainsHTML), and, in RSS, markup characters
/// written as the RSS Best Practices Profile's hexadecimal references
/// `&#x26;` and `&#x3C;`, never `&amp;`, `&lt;` or CDATA (CharacterData:
/// readers disagree on whether those are text or markup).
fn check_plain_text(report: &mut Report, what: &str, node: Node, xml: &str, rss: bool) {
    let value = text_of(node);
    if value.trim().is_empty() {
        report.add("NotBlank", what);
    }
    let end_tag = Regex::new(r"</(\w+)>").unwrap();
    if end_tag
        .captures_iter(&value)
        .any(|c| HTML_TAGS_IN_TEXT.contains(&c[1].to_ascii_lowercase().as_str()))
    {
        report.add("ContainsHTML", format!("{what} {value:?}"));
    }
    let raw = raw_content(node, xml);
    if rss && (raw.contains("&amp;") || raw.contains("&lt;") || raw.contains("<![CDATA[")) {
        report.add("CharacterData", format!("{what} written as {raw:?}"));
    }
}

/// One of each, where RSS allows no more (DuplicateElement).
fn check_no_duplicates(
    report: &mut Report,
    what: &str,
    node: Node,
    names: &[(Option<&str>, &str)],
) {
    for (ns, name) in names {
        if children(node, *ns, name).len() > 1 {
            report.add("DuplicateElement", format!("{what}: {name}"));
        }
    }
}

pub fn check_rss(xml: &str, self_url: &str) -> Report {
    let mut report = Report::default();
    let doc = match Document::parse(xml) {
        Ok(doc) => doc,
        Err(e) => {
            report.add("SAXError", e);
            return report;
        }
    };
    let root = doc.root_element();
    if root.tag_name().name() != "rss" || root.attribute("version") != Some("2.0") {
        report.add("InvalidRSSVersion", root.tag_name().name());
        return report;
    }
    let Some(channel) = children(root, None, "channel").into_iter().next() else {
        report.add("MissingElement", "channel");
        return report;
    };
    for name in ["title", "link", "description"] {
        match children(channel, None, name).first() {
            Some(node) if !text_of(*node).trim().is_empty() => {}
            _ => report.add("MissingElement", format!("channel {name}")),
        }
    }
    check_no_duplicates(
        &mut report,
        "channel",
        channel,
        &[
            (None, "title"),
            (None, "link"),
            (None, "description"),
            (None, "language"),
            (None, "lastBuildDate"),
        ],
    );
    if let Some(title) = children(channel, None, "title").first() {
        check_plain_text(&mut report, "channel title", *title, xml, true);
    }
    if let Some(description) = children(channel, None, "description").first() {
        check_html(&mut report, "channel description", &text_of(*description));
    }
    if let Some(language) = children(channel, None, "language").first() {
        let code = Regex::new(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{1,8})*$").unwrap();
        if !code.is_match(&text_of(*language)) {
            report.add("InvalidLanguage", text_of(*language));
        }
    }
    if let Some(date) = children(channel, None, "lastBuildDate").first() {
        check_rfc2822(&mut report, "lastBuildDate", &text_of(*date));
    }
    let self_links: Vec<Node> = children(channel, Some(ATOM), "link")
        .into_iter()
        .filter(|l| l.attribute("rel") == Some("self"))
        .collect();
    match self_links.as_slice() {
        [link] => {
            if link.attribute("href") != Some(self_url) {
                report.add(
                    "SelfDoesntMatchLocation",
                    format!("{:?}", link.attribute("href")),
                );
            }
            if link.attribute("type") != Some("application/rss+xml") {
                report.add("SelfNotAtom", format!("type {:?}", link.attribute("type")));
            }
        }
        [] => report.add("MissingAtomSelfLink", "channel"),
        _ => report.add("DuplicateAtomLink", "rel=self"),
    }
    let mut guids = HashSet::new();
    for (index, item) in children(channel, None, "item").into_iter().enumerate() {
        check_rss_item(&mut report, &format!("item {index}"), item, xml, &mut guids);
    }
    report
}

fn check_rss_item(
    report: &mut Report,
    what: &str,
    item: Node,
    xml: &str,
    guids: &mut HashSet<String>,
) {
    check_no_duplicates(
        report,
        what,
        item,
        &[
            (None, "title"),
            (None, "link"),
            (None, "description"),
            (None, "guid"),
            (None, "pubDate"),
            (Some(CONTENT), "encoded"),
        ],
    );
    let title = children(item, None, "title");
    let description = children(item, None, "description");
    if title.is_empty() && description.is_empty() {
        report.add("ItemMustContainTitleOrDescription", what);
    }
    if let Some(title) = title.first() {
        check_plain_text(report, &format!("{what} title"), *title, xml, true);
    }
    let link = children(item, None, "link").first().map(|l| text_of(*l));
    if let Some(link) = &link {
        if !is_absolute_http(link) {
            report.add("InvalidFullLink", format!("{what} link {link:?}"));
        }
    }
    match children(item, None, "guid").first() {
        None => report.add("MissingGuid", what),
        Some(guid) => {
            let value = text_of(*guid);
            if !guids.insert(value.clone()) {
                report.add("DuplicateValue", format!("{what} guid {value:?}"));
            }
            let permalink = match guid.attribute("isPermaLink") {
                None | Some("true") => true,
                Some("false") => false,
                Some(other) => {
                    report.add(
                        "InvalidBooleanAttribute",
                        format!("{what} isPermaLink={other:?}"),
                    );
                    false
                }
            };
            let lower = value.to_ascii_lowercase();
            if permalink && (lower.starts_with("tag:") || lower.starts_with("urn:uuid:")) {
                report.add("InvalidPermalink", format!("{what} guid {value:?}"));
            } else if permalink && !is_absolute_http(&value) {
                report.add("InvalidHttpGUID", format!("{what} guid {value:?}"));
            } else if permalink && link.as_deref() != Some(value.as_str()) {
                // Not the validator's: a permalink that is not the item's
                // link sends readers somewhere else than the link does.
                report.add(
                    "PermalinkIsNotTheLink",
                    format!("{what} guid {value:?}, link {link:?}"),
                );
            }
        }
    }
    if let Some(date) = children(item, None, "pubDate").first() {
        check_rfc2822(report, &format!("{what} pubDate"), &text_of(*date));
    }
    if let Some(description) = description.first() {
        check_html(
            report,
            &format!("{what} description"),
            &text_of(*description),
        );
    }
    if let Some(content) = children(item, Some(CONTENT), "encoded").first() {
        let before = description
            .first()
            .is_some_and(|d| d.range().start < content.range().start);
        if !before {
            report.add("NeedDescriptionBeforeContent", what);
        }
        check_html(
            report,
            &format!("{what} content:encoded"),
            &text_of(*content),
        );
    }
    if !children(item, None, "author").is_empty() && !children(item, Some(DC), "creator").is_empty()
    {
        report.add(
            "DuplicateItemSemantics",
            format!("{what}: author and dc:creator"),
        );
    }
    if children(item, Some(DC), "creator").len() > 1 {
        // Allowed by the validator, but feedparser and newsboat keep only
        // the last one.
        report.add("SeveralCreators", what);
    }
}

pub fn check_atom(xml: &str, self_url: &str) -> Report {
    let mut report = Report::default();
    let doc = match Document::parse(xml) {
        Ok(doc) => doc,
        Err(e) => {
            report.add("SAXError", e);
            return report;
        }
    };
    let feed = doc.root_element();
    if feed.tag_name().name() != "feed" || feed.tag_name().namespace() != Some(ATOM) {
        report.add("ObsoleteNamespace", format!("{:?}", feed.tag_name()));
        return report;
    }
    let mut seen_entry = false;
    for child in feed.children().filter(|c| c.is_element()) {
        if child.tag_name().name() == "entry" {
            seen_entry = true;
        } else if seen_entry {
            report.add("MisplacedMetadata", child.tag_name().name());
        }
    }
    check_atom_metadata(&mut report, "feed", feed, xml);
    let links = children(feed, Some(ATOM), "link");
    match links.iter().find(|l| l.attribute("rel") == Some("self")) {
        None => report.add("MissingSelf", "feed"),
        Some(link) => {
            if link.attribute("href") != Some(self_url) {
                report.add(
                    "SelfDoesntMatchLocation",
                    format!("{:?}", link.attribute("href")),
                );
            }
            if link.attribute("type") != Some("application/atom+xml") {
                report.add("SelfNotAtom", format!("type {:?}", link.attribute("type")));
            }
        }
    }
    let feed_has_author = !children(feed, Some(ATOM), "author").is_empty();
    let mut ids = HashSet::new();
    for (index, entry) in children(feed, Some(ATOM), "entry").into_iter().enumerate() {
        let what = format!("entry {index}");
        check_atom_metadata(&mut report, &what, entry, xml);
        if let Some(id) = children(entry, Some(ATOM), "id").first() {
            if !ids.insert(text_of(*id)) {
                report.add("DuplicateIds", format!("{what} {:?}", text_of(*id)));
            }
        }
        if !feed_has_author && children(entry, Some(ATOM), "author").is_empty() {
            report.add("MissingElement", format!("{what} author"));
        }
        if let Some(published) = children(entry, Some(ATOM), "published").first() {
            check_rfc3339(
                &mut report,
                &format!("{what} published"),
                &text_of(*published),
            );
        }
        for (name, node) in ["summary", "content"].iter().flat_map(|name| {
            children(entry, Some(ATOM), name)
                .into_iter()
                .map(move |n| (*name, n))
        }) {
            let what = format!("{what} {name}");
            match node.attribute("type").unwrap_or("text") {
                "html" => check_html(&mut report, &what, &text_of(node)),
                "text" => check_plain_text(&mut report, &what, node, xml, false),
                other => report.add("InvalidTextType", format!("{what} type={other:?}")),
            }
        }
    }
    report
}

/// What a feed and an entry share: one title, id and updated each; the id
/// an absolute URI in canonical form (NonCanonicalURI); links absolute and
/// no two with the same rel, type and hreflang (DuplicateAtomLink).
fn check_atom_metadata(report: &mut Report, what: &str, node: Node, xml: &str) {
    for name in ["title", "id", "updated"] {
        match children(node, Some(ATOM), name).len() {
            0 => report.add("MissingElement", format!("{what} {name}")),
            1 => {}
            _ => report.add("DuplicateElement", format!("{what} {name}")),
        }
    }
    if let Some(title) = children(node, Some(ATOM), "title").first() {
        match title.attribute("type").unwrap_or("text") {
            "text" => check_plain_text(report, &format!("{what} title"), *title, xml, false),
            other => report.add("InvalidTextType", format!("{what} title type={other:?}")),
        }
    }
    if let Some(id) = children(node, Some(ATOM), "id").first() {
        let id = text_of(*id);
        match url::Url::parse(&id) {
            Ok(url) if url.as_str() == id => {}
            _ => report.add("NonCanonicalURI", format!("{what} id {id:?}")),
        }
    }
    if let Some(updated) = children(node, Some(ATOM), "updated").first() {
        check_rfc3339(report, &format!("{what} updated"), &text_of(*updated));
    }
    let mut pairs = HashSet::new();
    for link in children(node, Some(ATOM), "link") {
        let href = link.attribute("href").unwrap_or_default();
        if !is_absolute_http(href) {
            report.add("InvalidIRI", format!("{what} link {href:?}"));
        }
        let key = (
            link.attribute("rel").unwrap_or("alternate").to_string(),
            link.attribute("type").map(str::to_string),
            link.attribute("hreflang").map(str::to_string),
        );
        if !pairs.insert(key.clone()) {
            report.add("DuplicateAtomLink", format!("{what} {key:?}"));
        }
    }
    for author in children(node, Some(ATOM), "author") {
        if children(author, Some(ATOM), "name")
            .iter()
            .all(|n| text_of(*n).trim().is_empty())
        {
            report.add("MissingElement", format!("{what} author name"));
        }
    }
}

/// JSON Feed 1.1: the required members, absolute URLs, unique ids, RFC 3339
/// dates, some content on every item.
pub fn check_json_feed(json: &str, self_url: &str) -> Report {
    let mut report = Report::default();
    let feed: serde_json::Value = match serde_json::from_str(json) {
        Ok(feed) => feed,
        Err(e) => {
            report.add("NotJson", e);
            return report;
        }
    };
    if feed["version"] != "https://jsonfeed.org/version/1.1" {
        report.add("InvalidVersion", &feed["version"]);
    }
    if feed["title"].as_str().is_none_or(|t| t.trim().is_empty()) {
        report.add("MissingElement", "title");
    }
    if !feed["home_page_url"].as_str().is_some_and(is_absolute_http) {
        report.add(
            "InvalidFullLink",
            format!("home_page_url {}", feed["home_page_url"]),
        );
    }
    if feed["feed_url"] != self_url {
        report.add("SelfDoesntMatchLocation", &feed["feed_url"]);
    }
    let Some(items) = feed["items"].as_array() else {
        report.add("MissingElement", "items");
        return report;
    };
    let mut ids = HashSet::new();
    for (index, item) in items.iter().enumerate() {
        let what = format!("item {index}");
        match item["id"].as_str() {
            Some(id) if ids.insert(id.to_string()) => {}
            _ => report.add("DuplicateIds", format!("{what} {}", item["id"])),
        }
        if !item["url"].as_str().is_some_and(is_absolute_http) {
            report.add("InvalidFullLink", format!("{what} url {}", item["url"]));
        }
        if item["content_html"].as_str().is_none() && item["content_text"].as_str().is_none() {
            report.add("MissingContent", &what);
        }
        if let Some(html) = item["content_html"].as_str() {
            check_html(&mut report, &format!("{what} content_html"), html);
        }
        match item["date_published"].as_str() {
            Some(date) => check_rfc3339(&mut report, &format!("{what} date_published"), date),
            None => report.add("MissingElement", format!("{what} date_published")),
        }
        for author in item["authors"].as_array().into_iter().flatten() {
            if author["name"].as_str().is_none_or(|n| n.trim().is_empty()) {
                report.add("MissingElement", format!("{what} author name"));
            }
        }
    }
    report
}

fn assert_clean(feed: &str, report: &Report) {
    assert!(
        report.0.is_empty(),
        "{feed}: {} problem(s):\n  {}",
        report.0.len(),
        report.0.join("\n  ")
    );
}

/// Issues that try the feeds: markup characters in every text, several
/// authors (one holding markup), and no summary at all.
fn hostile_workspace() -> Workspace {
    let ws = Workspace::with_examples("");
    std::fs::write(
        ws.issues().join("vol-009.md"),
        "+++\ntitle = \"Tom & Jerry <test> edition\"\nnumber = 9\ndate = 2019-06-01\n\
         summary = \"Tom & Jerry <test>\"\nauthors = [\"Ann\", \"Bo & Co <x>\", \"张三\"]\n+++\n\
         ## S & <s>\n\n### [I & <i>](https://example.com/?a=1&b=2)\n\nBody & <b>bold</b>, \
         ![a <diagram> & \"more\"](https://example.com/d.png) and [a relative link](/about/).\n",
    )
    .unwrap();
    std::fs::write(
        ws.issues().join("vol-010.md"),
        "+++\ntitle = \"No summary & no <author>\"\nnumber = 10\ndate = 2019-06-08\n+++\n\
         ## Only section\n\n### An item\n\nText.\n\n### [Another & <item>](https://example.com/x)\n\nMore.\n",
    )
    .unwrap();
    ws
}

#[test]
fn the_feeds_pass_the_validators_rules_with_hostile_titles_and_several_authors() {
    let ws = hostile_workspace();
    let output = ws.build();
    assert!(output.status.success(), "{}", stderr(&output));
    let base = ws.settings().site.base_url;
    let read = |file: &str| std::fs::read_to_string(ws.out().join(file)).unwrap();

    assert_clean(
        "feed.xml",
        &check_rss(&read("feed.xml"), base.join("feed.xml").unwrap().as_str()),
    );
    assert_clean(
        "atom.xml",
        &check_atom(&read("atom.xml"), base.join("atom.xml").unwrap().as_str()),
    );
    assert_clean(
        "feed.json",
        &check_json_feed(&read("feed.json"), base.join("feed.json").unwrap().as_str()),
    );
}

#[test]
fn a_feed_reader_reads_back_every_issue_as_written() {
    let ws = hostile_workspace();
    let output = ws.build();
    assert!(output.status.success(), "{}", stderr(&output));
    let issues = ws.load_issues();
    for file in ["feed.xml", "atom.xml", "feed.json"] {
        let bytes = std::fs::read(ws.out().join(file)).unwrap();
        let feed = feed_rs::parser::parse(&bytes[..]).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(feed.entries.len(), issues.len(), "{file}");
        for (entry, issue) in feed.entries.iter().zip(&issues) {
            let slug = issue.slug.as_str();
            let title = entry.title.as_ref().map(|t| t.content.as_str());
            assert_eq!(title, Some(issue.title.as_str()), "{file} {slug}: title");
            let published = entry.published.or(entry.updated).map(|t| t.date_naive());
            assert_eq!(published, Some(issue.date), "{file} {slug}: date");
            let names: Vec<&str> = entry
                .authors
                .iter()
                .filter_map(|a| a.name.as_deref())
                .collect();
            if file == "feed.xml" {
                // One dc:creator with every author.
                let joined = issue.authors.join(", ");
                let expected: Vec<&str> = if issue.authors.is_empty() {
                    vec![]
                } else {
                    vec![&joined]
                };
                assert_eq!(names, expected, "{file} {slug}: authors");
            } else if issue.authors.is_empty() {
                // JSON Feed items without authors have the feed's (feed-rs
                // applies that); Atom entries keep none.
                let site = ws.settings().site.author;
                assert!(
                    names.is_empty() || names == [site.as_str()],
                    "{file} {slug}: {names:?}"
                );
            } else {
                assert_eq!(names, issue.authors, "{file} {slug}: authors");
            }
            let link = entry.links.first().map(|l| l.href.as_str());
            assert_eq!(
                link,
                Some(ws.settings().issue_url(slug).as_str()),
                "{file} {slug}: link"
            );
        }
    }
}

/// The checker finds what it is meant to find: each broken feed below
/// breaks one rule, and is reported under that rule's name.
#[test]
fn the_checker_reports_each_rule_it_knows() {
    let rss = |item: &str| {
        format!(
            "<?xml version=\"1.0\"?><rss version=\"2.0\" xmlns:atom=\"{ATOM}\" \
             xmlns:content=\"{CONTENT}\" xmlns:dc=\"{DC}\"><channel><title>T</title>\
             <link>https://e.example/</link><description>D</description>\
             <atom:link href=\"https://e.example/feed.xml\" rel=\"self\" type=\"application/rss+xml\"/>\
             {item}</channel></rss>"
        )
    };
    let good_item = "<item><title>Fine</title><link>https://e.example/1/</link>\
        <description>ok</description><guid>https://e.example/1/</guid>\
        <pubDate>Sat, 1 Jun 2019 00:00:00 +0000</pubDate></item>";
    let self_url = "https://e.example/feed.xml";
    assert_clean("good", &check_rss(&rss(good_item), self_url));

    for (rule, item) in [
        ("SAXError", "<item><title>unclosed</item>"),
        ("NotHtml", "<item><title>x</title><guid>https://e.example/1/</guid><link>https://e.example/1/</link><description>Tom &amp; Jerry <![CDATA[<test>]]></description></item>"),
        ("CharacterData", "<item><title>Tom &amp; Jerry</title><guid>https://e.example/1/</guid><link>https://e.example/1/</link></item>"),
        ("ContainsHTML", "<item><title>a &#x3C;b>bold&#x3C;/b></title><guid>https://e.example/1/</guid><link>https://e.example/1/</link></item>"),
        ("MissingGuid", "<item><title>x</title></item>"),
        ("InvalidPermalink", "<item><title>x</title><guid>tag:e.example,2019:1</guid></item>"),
        ("PermalinkIsNotTheLink", "<item><title>x</title><link>https://e.example/1/</link><guid>https://e.example/2/</guid></item>"),
        ("InvalidRFC2822Date", "<item><title>x</title><guid isPermaLink=\"false\">1-x</guid><pubDate>2019-06-01</pubDate></item>"),
        ("IncorrectDOW", "<item><title>x</title><guid isPermaLink=\"false\">1-x</guid><pubDate>Mon, 1 Jun 2019 00:00:00 +0000</pubDate></item>"),
        ("ImplausibleDate", "<item><title>x</title><guid isPermaLink=\"false\">1-x</guid><pubDate>Wed, 1 Jun 2089 00:00:00 +0000</pubDate></item>"),
        ("NeedDescriptionBeforeContent", "<item><title>x</title><guid isPermaLink=\"false\">1-x</guid><content:encoded>&lt;p>x&lt;/p></content:encoded></item>"),
        ("SeveralCreators", "<item><title>x</title><guid isPermaLink=\"false\">1-x</guid><dc:creator>A</dc:creator><dc:creator>B</dc:creator></item>"),
        ("DuplicateElement", "<item><title>x</title><title>y</title><guid isPermaLink=\"false\">1-x</guid></item>"),
        ("ContainsRelRef", "<item><title>x</title><guid isPermaLink=\"false\">1-x</guid><description>&lt;a href=\"/about/\">a&lt;/a></description></item>"),
        ("DangerousStyleAttr", "<item><title>x</title><guid isPermaLink=\"false\">1-x</guid><description>&lt;p style=\"color:#fff\">a&lt;/p></description></item>"),
        ("SecurityRisk", "<item><title>x</title><guid isPermaLink=\"false\">1-x</guid><description>&lt;iframe src=\"https://e.example/\">&lt;/iframe></description></item>"),
        ("SecurityRiskAttr", "<item><title>x</title><guid isPermaLink=\"false\">1-x</guid><description>&lt;p onclick=\"x()\">a&lt;/p></description></item>"),
    ] {
        let report = check_rss(&rss(item), self_url);
        assert!(report.has(rule), "{rule} not reported for {item}: {report:?}");
    }
    let no_self = rss(good_item).replace("rel=\"self\"", "rel=\"hub\"");
    assert!(check_rss(&no_self, self_url).has("MissingAtomSelfLink"));

    let atom = |entry: &str| {
        format!(
            "<?xml version=\"1.0\"?><feed xmlns=\"{ATOM}\"><title>T</title><id>https://e.example/</id>\
             <updated>2019-06-01T00:00:00+00:00</updated><author><name>A</name></author>\
             <link href=\"https://e.example/atom.xml\" rel=\"self\" type=\"application/atom+xml\"/>{entry}</feed>"
        )
    };
    let good_entry = "<entry><title>x</title><id>https://e.example/1/</id>\
        <updated>2019-06-01T00:00:00+00:00</updated><content type=\"html\">&lt;p>x&lt;/p></content></entry>";
    let atom_url = "https://e.example/atom.xml";
    assert_clean("good atom", &check_atom(&atom(good_entry), atom_url));
    for (rule, entry) in [
        ("DuplicateIds", format!("{good_entry}{good_entry}")),
        (
            "NonCanonicalURI",
            good_entry.replace("https://e.example/1/", "HTTPS://e.example:443/1/"),
        ),
        (
            "InvalidRFC3339Date",
            good_entry.replace("2019-06-01T00:00:00+00:00", "2019-06-01"),
        ),
        (
            "NotHtml",
            good_entry.replace("&lt;p>x&lt;/p>", "&lt;p>x&lt;/q>"),
        ),
        ("MissingElement", good_entry.replace("<title>x</title>", "")),
        (
            "MisplacedMetadata",
            format!("{good_entry}<subtitle>late</subtitle>"),
        ),
    ] {
        let report = check_atom(&atom(&entry), atom_url);
        assert!(
            report.has(rule),
            "{rule} not reported for {entry}: {report:?}"
        );
    }
    let json_url = "https://e.example/feed.json";
    let json = |item: &str| {
        format!(
            "{{\"version\":\"https://jsonfeed.org/version/1.1\",\"title\":\"T\",\
             \"home_page_url\":\"https://e.example/\",\"feed_url\":\"{json_url}\",\"items\":[{item}]}}"
        )
    };
    let good = "{\"id\":\"1\",\"url\":\"https://e.example/1/\",\"content_html\":\"<p>x</p>\",\
        \"date_published\":\"2019-06-01T00:00:00Z\"}";
    assert_clean("good json", &check_json_feed(&json(good), json_url));
    assert!(check_json_feed(&json(&format!("{good},{good}")), json_url).has("DuplicateIds"));
    assert!(check_json_feed(
        &json(&good.replace("2019-06-01T00:00:00Z", "June 1")),
        json_url
    )
    .has("InvalidRFC3339Date"));
    assert!(check_json_feed(
        &json(&good.replace("\"content_html\":\"<p>x</p>\",", "")),
        json_url
    )
    .has("MissingContent"));
}
