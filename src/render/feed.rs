//! The feeds: RSS 2.0 through the `rss` crate, Atom 1.0 through
//! `atom_syndication`, JSON Feed 1.1 through serde. Pure: entries in,
//! documents out.
//!
//! Nothing here reads the clock. A feed's "updated" time is its newest
//! issue's date and an issue's time is midnight UTC of its date, so the same
//! issues always give byte-identical feeds and a rebuild with nothing new
//! changes no file (and pings no hub).

use anyhow::Context;
use atom_syndication as atom;
use chrono::{DateTime, SecondsFormat, Utc};
use rss::validation::Validate;
use serde::Serialize;
use url::Url;

use super::templates::escape_html;

use crate::config::Settings;
use crate::issue::Issue;

/// One of the three feed formats: its file in the output folder and what
/// it is served as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedKind {
    pub file: &'static str,
    pub media_type: &'static str,
    /// Shown in page links and `<link title>`.
    pub name: &'static str,
}

pub const RSS: FeedKind = FeedKind {
    file: "feed.xml",
    media_type: "application/rss+xml",
    name: "RSS",
};
pub const ATOM: FeedKind = FeedKind {
    file: "atom.xml",
    media_type: "application/atom+xml",
    name: "Atom",
};
pub const JSON_FEED: FeedKind = FeedKind {
    file: "feed.json",
    media_type: "application/feed+json",
    name: "JSON Feed",
};
pub const FEEDS: [FeedKind; 3] = [RSS, ATOM, JSON_FEED];

const GENERATOR: &str = "Herald";

/// Where a feed is published.
pub fn feed_url(settings: &Settings, kind: &FeedKind) -> Url {
    settings
        .site
        .base_url
        .join(kind.file)
        .expect("a feed file name is a valid relative URL")
}

/// An issue as a feed shows it: the permalink of its page and the issue
/// rendered as HTML with absolute URLs (the same markup as the page).
pub struct FeedEntry<'a> {
    pub issue: &'a Issue,
    pub url: Url,
    pub content_html: &'a str,
}

/// An issue's time: midnight UTC of its date. Never the build time, so a
/// rebuild does not move it.
pub fn published(issue: &Issue) -> DateTime<Utc> {
    issue
        .date
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

/// The newest entry's time; the Unix epoch for a feed with no entry.
fn updated(entries: &[FeedEntry]) -> DateTime<Utc> {
    entries
        .iter()
        .map(|entry| published(entry.issue))
        .max()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

pub fn render_rss(entries: &[FeedEntry], settings: &Settings) -> anyhow::Result<String> {
    let site = &settings.site;
    let mut links = vec![atom_link("self", &feed_url(settings, &RSS), Some(&RSS))];
    if let Some(hub) = &settings.feeds.websub_hub {
        links.push(atom_link("hub", hub, None));
    }
    let items: Vec<rss::Item> = entries
        .iter()
        .map(|entry| {
            let issue = entry.issue;
            // One dc:creator: feedparser and newsboat keep only the last
            // of several.
            let dublin_core = rss::extension::dublincore::DublinCoreExtension {
                creators: vec![issue.authors.join(", ")],
                ..Default::default()
            };
            rss::ItemBuilder::default()
                .title(Some(issue.title.clone()))
                .link(Some(entry.url.to_string()))
                .guid(Some(
                    rss::GuidBuilder::default()
                        .value(entry.url.to_string())
                        .permalink(true)
                        .build(),
                ))
                .pub_date(Some(published(issue).to_rfc2822()))
                .description(Some(rss_description(issue)))
                .content(Some(entry.content_html.to_string()))
                .dublin_core_ext((!issue.authors.is_empty()).then_some(dublin_core))
                .build()
        })
        .collect();
    let channel = rss::ChannelBuilder::default()
        .title(site.title.clone())
        .link(site.base_url.to_string())
        .description(escape_html(&site.description))
        .language(Some(site.language.clone()))
        .generator(Some(GENERATOR.to_string()))
        .last_build_date((!entries.is_empty()).then(|| updated(entries).to_rfc2822()))
        .atom_ext(Some(rss::extension::atom::AtomExtension { links }))
        .items(items)
        .build();
    // A guard, not a test: a feed that fails validation is never published.
    channel
        .validate()
        .map_err(|e| anyhow::anyhow!("the RSS feed is invalid: {e}"))?;
    Ok(plain_text_references(&channel.to_string()))
}

/// An item's `<description>`: the summary or, for an issue without one,
/// the titles of its items. Never left out: the RSS profile (and the W3C
/// validator) wants a description before `content:encoded`, for readers
/// that show only the one. Descriptions are HTML, so the plain text is
/// escaped once more, or "Tom & Jerry <test>" would lose its "<test>".
fn rss_description(issue: &Issue) -> String {
    let text = match &issue.summary {
        Some(summary) => summary.clone(),
        None => {
            let titles: Vec<&str> = issue.items().map(|item| item.title.as_str()).collect();
            if titles.is_empty() {
                issue.title.clone()
            } else {
                titles.join(" · ")
            }
        }
    };
    escape_html(&text)
}

/// RSS titles are plain text, but readers disagree on whether `&amp;` and
/// `&lt;` in them are text or markup; the RSS Best Practices Profile (and
/// the W3C validator) ask for the numeric references `&#x26;` and `&#x3C;`,
/// which every reader reads as text. Titles hold no elements, so each
/// `<title>` is rewritten on its own.
fn plain_text_references(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(start) = rest.find("<title>") {
        let (before, from) = rest.split_at(start + "<title>".len());
        out.push_str(before);
        let end = from.find("</title>").unwrap_or(from.len());
        out.push_str(
            &from[..end]
                .replace("&amp;", "&#x26;")
                .replace("&lt;", "&#x3C;"),
        );
        rest = &from[end..];
    }
    out.push_str(rest);
    out
}

fn atom_link(rel: &str, href: &Url, kind: Option<&FeedKind>) -> atom::Link {
    atom::Link {
        href: href.to_string(),
        rel: rel.to_string(),
        mime_type: kind.map(|k| k.media_type.to_string()),
        ..Default::default()
    }
}

pub fn render_atom(entries: &[FeedEntry], settings: &Settings) -> String {
    let site = &settings.site;
    let mut links = vec![
        atom_link("self", &feed_url(settings, &ATOM), Some(&ATOM)),
        atom::Link {
            href: site.base_url.to_string(),
            rel: "alternate".into(),
            mime_type: Some("text/html".into()),
            ..Default::default()
        },
    ];
    if let Some(hub) = &settings.feeds.websub_hub {
        links.push(atom_link("hub", hub, None));
    }
    let person = |name: &str| atom::Person {
        name: name.to_string(),
        ..Default::default()
    };
    let atom_entries: Vec<atom::Entry> = entries
        .iter()
        .map(|entry| {
            let issue = entry.issue;
            let time = published(issue).fixed_offset();
            atom::EntryBuilder::default()
                // The permalink is the id: it never changes once published,
                // so readers never show an issue twice.
                .id(entry.url.to_string())
                .title(atom::Text::plain(issue.title.clone()))
                .updated(time)
                .published(Some(time))
                .authors(issue.authors.iter().map(|a| person(a)).collect::<Vec<_>>())
                .links(vec![atom::Link {
                    href: entry.url.to_string(),
                    rel: "alternate".into(),
                    mime_type: Some("text/html".into()),
                    ..Default::default()
                }])
                .summary(issue.summary.clone().map(atom::Text::plain))
                .content(Some(
                    atom::ContentBuilder::default()
                        .content_type(Some("html".to_string()))
                        .value(Some(entry.content_html.to_string()))
                        .build(),
                ))
                .build()
        })
        .collect();
    let feed = atom::FeedBuilder::default()
        .id(site.base_url.to_string())
        .title(atom::Text::plain(site.title.clone()))
        .subtitle(Some(atom::Text::plain(site.description.clone())))
        .updated(updated(entries).fixed_offset())
        .authors(vec![person(&site.author)])
        .links(links)
        .lang(Some(site.language.clone()))
        .generator(Some(atom::Generator {
            value: GENERATOR.to_string(),
            uri: None,
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
        }))
        .entries(atom_entries)
        .build();
    feed.to_string()
}

/// JSON Feed 1.1, <https://jsonfeed.org/version/1.1>.
#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: &'a str,
    feed_url: String,
    description: &'a str,
    language: &'a str,
    authors: Vec<JsonAuthor<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<JsonHub<'a>>,
    items: Vec<JsonItem<'a>>,
}

#[derive(Serialize)]
struct JsonAuthor<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct JsonHub<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct JsonItem<'a> {
    id: &'a str,
    url: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<&'a str>,
    content_html: &'a str,
    date_published: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<JsonAuthor<'a>>,
}

pub fn render_json_feed(entries: &[FeedEntry], settings: &Settings) -> anyhow::Result<String> {
    let site = &settings.site;
    let feed = JsonFeed {
        version: "https://jsonfeed.org/version/1.1",
        title: &site.title,
        home_page_url: site.base_url.as_str(),
        feed_url: feed_url(settings, &JSON_FEED).to_string(),
        description: &site.description,
        language: &site.language,
        authors: vec![JsonAuthor { name: &site.author }],
        hubs: settings
            .feeds
            .websub_hub
            .iter()
            .map(|hub| JsonHub {
                kind: "WebSub",
                url: hub.as_str(),
            })
            .collect(),
        items: entries
            .iter()
            .map(|entry| JsonItem {
                id: entry.url.as_str(),
                url: entry.url.as_str(),
                title: &entry.issue.title,
                summary: entry.issue.summary.as_deref(),
                content_html: entry.content_html,
                date_published: published(entry.issue).to_rfc3339_opts(SecondsFormat::Secs, true),
                authors: entry
                    .issue
                    .authors
                    .iter()
                    .map(|name| JsonAuthor { name })
                    .collect(),
            })
            .collect(),
    };
    let mut json = serde_json::to_string_pretty(&feed).context("serialising the JSON Feed")?;
    json.push('\n');
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(front_matter: &str) -> Issue {
        let text = format!(
            "+++\ntitle = \"T\"\nnumber = 1\ndate = 2019-06-01\n{front_matter}+++\n\
             ## S\n\n### Fish & chips < £5\n\nx\n\n### Second\n\ny\n"
        );
        let base = Url::parse("https://news.example/").unwrap();
        crate::issue::parse_issue(std::path::Path::new("t.md"), text.as_bytes(), &base)
            .issue
            .expect("a valid issue")
    }

    #[test]
    fn every_rss_item_has_an_escaped_description() {
        assert_eq!(
            rss_description(&issue("summary = \"Tom & Jerry <test>\"\n")),
            "Tom &amp; Jerry &lt;test&gt;"
        );
        assert_eq!(
            rss_description(&issue("")),
            "Fish &amp; chips &lt; £5 · Second"
        );
    }
}
