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
    issue
        .sections
        .iter()
        .flat_map(|section| section.items.iter())
        .filter(|item| item.url.is_some())
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
        let slash = if base_url.as_str().ends_with('/') { "" } else { "/" };
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
        .sections
        .iter()
        .flat_map(|section| section.items.iter())
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
