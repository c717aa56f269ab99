//! Tracked item links (`[tracking] clicks`): each item link of a campaign's
//! email becomes `<base_url>l/<campaign>/<n>`, numbered from 1 in the
//! email's order, which `herald serve` redirects to the item and counts.
//!
//! The rewrite happens while the email is rendered, once per campaign: the
//! table says what each item's link becomes, and the per-recipient part
//! (a token naming the subscriber's copy, with `per_subscriber`) is a
//! personalisation marker after each link, filled like the unsubscribe
//! link. The web archive and the feeds never see the table.

use url::Url;

use super::personalize::click_marker;
use crate::issue::{Issue, Item};

/// The items of an issue that have a link, in the email's order.
fn linked_items(issue: &Issue) -> impl Iterator<Item = &Item> {
    issue.items().filter(|item| item.url.is_some())
}

/// One rewritten link: its number and where it leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedLink {
    pub index: i64,
    pub url: Url,
}

/// What a campaign's item links become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTable {
    /// `<base_url>l/<campaign>/`.
    prefix: String,
    links: Vec<TrackedLink>,
}

impl LinkTable {
    /// The table of `issue`'s email in campaign `campaign_id`.
    pub fn for_issue(issue: &Issue, base_url: &Url, campaign_id: i64) -> LinkTable {
        let links = linked_items(issue)
            .filter_map(|item| item.url.clone())
            .zip(1..)
            .map(|(url, index)| TrackedLink { index, url })
            .collect();
        // `[site] base_url` ends in '/' once the config has loaded; a base
        // made some other way gets one here rather than a broken link.
        let slash = if base_url.as_str().ends_with('/') {
            ""
        } else {
            "/"
        };
        LinkTable {
            prefix: format!("{base_url}{slash}l/{campaign_id}/"),
            links,
        }
    }

    /// The links, for the store: the only places the redirect leads.
    pub fn links(&self) -> &[TrackedLink] {
        &self.links
    }

    /// What the email says instead of item link `index`: the redirect, and
    /// the marker where a recipient's token goes.
    pub(crate) fn tracked_url(&self, index: i64) -> String {
        format!("{}{index}{}", self.prefix, click_marker())
    }
}

/// Each item's link as the email shows it, in the order of
/// [`linked_items`]: the item's own URL, or its redirect when `table` is
/// given. `None` for an item without a link.
pub(crate) fn email_links(issue: &Issue, table: Option<&LinkTable>) -> Vec<Option<String>> {
    let mut next_index = 1;
    issue
        .items()
        .map(|item| {
            let url = item.url.as_ref()?;
            let shown = match table {
                Some(table) => table.tracked_url(next_index),
                None => url.to_string(),
            };
            next_index += 1;
            Some(shown)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::render::{
        render_email, render_email_with_links, EmailContext, Recipient, Templates,
    };

    const ISSUE: &str = r#"+++
title = "Links"
number = 1
date = 2024-01-01
+++
An intro with [its own link](https://intro.example/).

## Section

### [First](https://one.example/a?x=1&y=2)

A body with [a body link](https://body.example/).

### No link

Text.

### [Second](https://two.example/)
"#;

    fn issue() -> Issue {
        let base = Url::parse("https://news.example.com/").unwrap();
        crate::issue::parse_issue(Path::new("links.md"), ISSUE.as_bytes(), &base)
            .issue
            .expect("a valid issue")
    }

    fn recipient(click_query: &str) -> Recipient<'_> {
        Recipient {
            email: "reader@example.com",
            unsubscribe_url: "https://news.example.com/unsubscribe/t",
            web_url: "https://news.example.com/issues/links/",
            click_query,
        }
    }

    #[test]
    fn the_table_numbers_linked_items_from_one_in_order() {
        let base = Url::parse("https://news.example.com/").unwrap();
        let table = LinkTable::for_issue(&issue(), &base, 7);
        let links: Vec<(i64, &str)> = table
            .links()
            .iter()
            .map(|l| (l.index, l.url.as_str()))
            .collect();
        assert_eq!(
            links,
            [
                (1, "https://one.example/a?x=1&y=2"),
                (2, "https://two.example/")
            ]
        );
        // A base without its final '/' still makes a path under it.
        let bare = Url::parse("https://news.example.com/letters").unwrap();
        assert_eq!(
            LinkTable::for_issue(&issue(), &bare, 7).tracked_url(1),
            format!("https://news.example.com/letters/l/7/1{}", click_marker())
        );
    }

    #[test]
    fn item_links_are_rewritten_in_both_parts_and_nothing_else_is() {
        let issue = issue();
        let base = Url::parse("https://news.example.com/").unwrap();
        let table = LinkTable::for_issue(&issue, &base, 7);
        let context = EmailContext {
            site_title: "Weekly",
            language: "en",
        };
        let templates = Templates::builtin();
        let email = render_email_with_links(&issue, &context, &templates, Some(&table)).unwrap();
        for (query, suffix) in [("", ""), ("?s=12-00ff", "?s=12-00ff")] {
            let html = email.html.fill(&recipient(query));
            let text = email.text.fill(&recipient(query));
            for part in [&html, &text] {
                assert!(
                    part.contains(&format!("https://news.example.com/l/7/1{suffix}")),
                    "{part}"
                );
                assert!(
                    part.contains(&format!("https://news.example.com/l/7/2{suffix}")),
                    "{part}"
                );
                assert!(!part.contains("https://news.example.com/l/7/3"), "{part}");
                assert!(!part.contains("one.example"), "{part}");
                assert!(!part.contains("two.example"), "{part}");
                assert!(!part.contains("%%herald"), "{part}");
            }
            assert!(html.contains(&format!("href=\"https://news.example.com/l/7/1{suffix}\"")));
            // Links in the text around the items are left alone.
            assert!(
                html.contains("https://intro.example/") && html.contains("https://body.example/")
            );
        }

        let plain = render_email(&issue, &context, &templates).unwrap();
        let (html, text) = (
            plain.html.fill(&recipient("")),
            plain.text.fill(&recipient("")),
        );
        for part in [&html, &text] {
            assert!(part.contains("https://two.example/"), "{part}");
            assert!(!part.contains("/l/"), "{part}");
        }
        assert!(
            html.contains("href=\"https://one.example/a?x=1&amp;y=2\""),
            "{html}"
        );
    }
}
