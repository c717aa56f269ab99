//! The web archive: an index of every issue, one permanent page per issue,
//! the stylesheet and the feeds, as files for `herald build` to write.
//!
//! Links between pages are relative (`issues/<slug>/`, `../../style.css`),
//! so the archive works wherever it is served from: `herald serve` on any
//! port, a sub-path behind a proxy, a CDN. What must be absolute is built
//! from `site.base_url`: the canonical URL, the feed links and the subscribe
//! form's target (a page may be read from a mirror or a feed reader's cache).

use serde::Serialize;

use super::feed::{self, FeedEntry, FEEDS};
use super::labels::Labels;
use super::templates::Templates;
use super::SiteFile;
use crate::config::Settings;
use crate::issue::Issue;

#[derive(Serialize)]
struct FeedLink {
    name: &'static str,
    media_type: &'static str,
    url: String,
}

/// The issue itself, as both its web page and every feed show it.
#[derive(Serialize)]
struct ContentView<'a> {
    labels: &'static Labels,
    intro_html: &'a str,
    sections: Vec<SectionView<'a>>,
    authors: String,
    editor: Option<&'a str>,
    has_credits: bool,
}

#[derive(Serialize)]
struct SectionView<'a> {
    title: &'a str,
    intro_html: &'a str,
    items: Vec<ItemView<'a>>,
}

#[derive(Serialize)]
struct ItemView<'a> {
    title: &'a str,
    url: Option<&'a str>,
    body_html: &'a str,
}

#[derive(Serialize)]
struct IssuePageView<'a> {
    site_title: &'a str,
    language: &'a str,
    labels: &'static Labels,
    title: &'a str,
    number: u32,
    date: String,
    summary: Option<&'a str>,
    canonical_url: &'a str,
    feeds: &'a [FeedLink],
    /// The relative way back to the archive's root from `issues/<slug>/`.
    root: &'static str,
    content_html: &'a str,
    /// The older neighbour.
    previous: Option<NeighbourView<'a>>,
    /// The newer neighbour.
    next: Option<NeighbourView<'a>>,
}

#[derive(Serialize)]
struct NeighbourView<'a> {
    title: &'a str,
    href: String,
}

#[derive(Serialize)]
struct IndexView<'a> {
    site_title: &'a str,
    description: &'a str,
    language: &'a str,
    author: &'a str,
    labels: &'static Labels,
    canonical_url: &'a str,
    subscribe_url: String,
    feeds: &'a [FeedLink],
    issues: Vec<IndexIssueView<'a>>,
}

#[derive(Serialize)]
struct IndexIssueView<'a> {
    title: &'a str,
    number: u32,
    date: String,
    summary: Option<&'a str>,
    href: String,
}

fn render_content(
    issue: &Issue,
    labels: &'static Labels,
    templates: &Templates,
) -> anyhow::Result<String> {
    let view = ContentView {
        labels,
        intro_html: &issue.intro.html,
        sections: issue
            .sections
            .iter()
            .map(|section| SectionView {
                title: &section.title,
                intro_html: &section.intro.html,
                items: section
                    .items
                    .iter()
                    .map(|item| ItemView {
                        title: &item.title,
                        url: item.url.as_ref().map(|u| u.as_str()),
                        body_html: &item.body.html,
                    })
                    .collect(),
            })
            .collect(),
        authors: issue.authors.join(labels.list_separator),
        editor: issue.editor.as_deref(),
        has_credits: !issue.authors.is_empty() || issue.editor.is_some(),
    };
    templates.render("issue_content.html.hbs", &view)
}

fn date_of(issue: &Issue) -> String {
    issue.date.format("%Y-%m-%d").to_string()
}

/// Every file of the site: `index.html`, `style.css`,
/// `issues/<slug>/index.html` for each issue, and the three feeds with the
/// newest `[feeds] max_items` issues. The archive keeps every issue.
pub fn render_site(
    issues: &[Issue],
    settings: &Settings,
    templates: &Templates,
) -> anyhow::Result<Vec<SiteFile>> {
    let site = &settings.site;
    let labels = Labels::for_language(&site.language);
    let mut issues: Vec<&Issue> = issues.iter().collect();
    issues.sort_by_key(|issue| std::cmp::Reverse(issue.number));

    let feed_links: Vec<FeedLink> = FEEDS
        .iter()
        .map(|kind| FeedLink {
            name: kind.name,
            media_type: kind.media_type,
            url: feed::feed_url(settings, kind).to_string(),
        })
        .collect();
    let contents = issues
        .iter()
        .map(|issue| render_content(issue, labels, templates))
        .collect::<anyhow::Result<Vec<String>>>()?;
    let urls: Vec<String> = issues
        .iter()
        .map(|issue| settings.issue_url(issue.slug.as_str()).to_string())
        .collect();

    let mut files = Vec::with_capacity(issues.len() + 5);
    let index = IndexView {
        site_title: &site.title,
        description: &site.description,
        language: &site.language,
        author: &site.author,
        labels,
        canonical_url: site.base_url.as_str(),
        subscribe_url: site
            .base_url
            .join("subscribe")
            .expect("a static relative URL")
            .to_string(),
        feeds: &feed_links,
        issues: issues
            .iter()
            .map(|issue| IndexIssueView {
                title: &issue.title,
                number: issue.number,
                date: date_of(issue),
                summary: issue.summary.as_deref(),
                href: format!("issues/{}/", issue.slug),
            })
            .collect(),
    };
    files.push(page(
        "index.html",
        templates.render("index.html.hbs", &index)?,
    ));
    files.push(page("style.css", templates.render("style.css", &())?));

    let neighbour = |at: usize| {
        issues.get(at).map(|issue: &&Issue| NeighbourView {
            title: &issue.title,
            href: format!("../{}/", issue.slug),
        })
    };
    for (at, issue) in issues.iter().enumerate() {
        let view = IssuePageView {
            site_title: &site.title,
            language: &site.language,
            labels,
            title: &issue.title,
            number: issue.number,
            date: date_of(issue),
            summary: issue.summary.as_deref(),
            canonical_url: &urls[at],
            feeds: &feed_links,
            root: "../../",
            content_html: &contents[at],
            // Newest first: the older issue follows, the newer one precedes.
            previous: neighbour(at + 1),
            next: at.checked_sub(1).and_then(neighbour),
        };
        files.push(page(
            &format!("issues/{}/index.html", issue.slug),
            templates.render("issue.html.hbs", &view)?,
        ));
    }

    let newest = issues.len().min(settings.feeds.max_items);
    let entries: Vec<FeedEntry> = (0..newest)
        .map(|at| FeedEntry {
            issue: issues[at],
            url: settings.issue_url(issues[at].slug.as_str()),
            content_html: &contents[at],
        })
        .collect();
    files.push(page(feed::RSS.file, feed::render_rss(&entries, settings)?));
    files.push(page(feed::ATOM.file, feed::render_atom(&entries, settings)));
    files.push(page(
        feed::JSON_FEED.file,
        feed::render_json_feed(&entries, settings)?,
    ));
    Ok(files)
}

fn page(path: &str, text: String) -> SiteFile {
    SiteFile {
        path: path.to_string(),
        bytes: text.into_bytes(),
    }
}
