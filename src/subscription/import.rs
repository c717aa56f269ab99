//! Many addresses at once, for `herald subscribers import`: a few
//! statements per chunk rather than a few per row, so a list of 100,000
//! goes in within seconds.

use crate::domain::{SubscriberEmail, SubscriberName, Token};
use crate::store::subscribers::{self, Source, SubscriberState};
use crate::store::{deliveries, suppressions, Millis, Tx};

use super::{suppression_hash, Subscriptions};

/// One good row of the file, with its line for reports.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: u64,
    pub email: SubscriberEmail,
    pub name: Option<SubscriberName>,
}

/// What a chunk (or, summed, a whole file) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub added: u64,
    /// On the list before (or earlier in the same file): left unchanged,
    /// so running an import twice changes nothing.
    pub already_on_list: u64,
    /// Lines of addresses erased on request earlier: refused.
    pub suppressed_lines: Vec<u64>,
}

impl ImportReport {
    pub fn absorb(&mut self, other: ImportReport) {
        self.added += other.added;
        self.already_on_list += other.already_on_list;
        self.suppressed_lines.extend(other.suppressed_lines);
    }
}

impl Subscriptions {
    /// Imports rows in the caller's transaction. New addresses become
    /// pending with a confirmation queued each, or active with
    /// `confirmed`; addresses already on the list are not touched.
    pub async fn import_chunk(
        &self,
        tx: &mut Tx<'_>,
        rows: &[ImportRow],
        confirmed: bool,
        now: Millis,
    ) -> anyhow::Result<ImportReport> {
        let mut report = ImportReport::default();
        let hashes: Vec<String> = rows.iter().map(|r| suppression_hash(&r.email)).collect();
        let suppressed = suppressions::suppressed_among(tx, &hashes).await?;
        let allowed: Vec<&ImportRow> = rows
            .iter()
            .zip(&hashes)
            .filter_map(|(row, hash)| {
                if suppressed.contains(hash) {
                    report.suppressed_lines.push(row.line);
                    None
                } else {
                    Some(row)
                }
            })
            .collect();
        let tokens: Vec<Token> = allowed.iter().map(|_| Token::generate()).collect();
        let new_rows: Vec<(&SubscriberEmail, Option<&str>, &str)> = allowed
            .iter()
            .zip(&tokens)
            .map(|(row, token)| {
                (
                    &row.email,
                    row.name.as_ref().map(SubscriberName::as_str),
                    token.as_str(),
                )
            })
            .collect();
        let state = if confirmed {
            SubscriberState::Active
        } else {
            SubscriberState::Pending
        };
        let inserted =
            subscribers::insert_subscribers(tx, &new_rows, state, Source::Import, now).await?;
        report.added = inserted.len() as u64;
        report.already_on_list = (allowed.len() - inserted.len()) as u64;
        let ids: Vec<i64> = inserted.iter().map(|(id, _)| *id).collect();
        let reason = if confirmed {
            "import --confirmed"
        } else {
            "import"
        };
        subscribers::record_events(tx, &ids, state, reason, now).await?;
        if !confirmed {
            let domain = self.from.email.domain();
            let queued: Vec<(i64, &str, String)> = inserted
                .iter()
                .map(|(id, address)| {
                    let message_id = format!(
                        "<herald.confirm.{}@{domain}>",
                        uuid::Uuid::new_v4().simple()
                    );
                    (*id, address.as_str(), message_id)
                })
                .collect();
            deliveries::enqueue_transactional_many(
                tx,
                super::confirmation::CONFIRMATION,
                &queued,
                now,
            )
            .await?;
        }
        Ok(report)
    }
}
