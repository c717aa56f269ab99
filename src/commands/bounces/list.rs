//! `herald bounces list`: the reports received, newest first.

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::bounce::{Channel, ReportKind};
use crate::config::Settings;
use crate::store::bounce_reports::{self, ReportRow};
use crate::store::Store;

#[derive(Serialize)]
struct ListedReport {
    id: i64,
    received_at: String,
    channel: &'static str,
    provider: Option<&'static str>,
    kind: &'static str,
    matched: i64,
    unmatched: i64,
    /// Whether the raw message is still kept (see `[bounces] keep_days`).
    raw_kept: bool,
    recipients: serde_json::Value,
}

impl ListedReport {
    fn from_row(row: ReportRow) -> anyhow::Result<Self> {
        let channel = Channel::parse(&row.channel, row.provider.as_deref())
            .with_context(|| format!("report {}: unknown channel {:?}", row.id, row.channel))?;
        let kind = ReportKind::parse(&row.kind)
            .with_context(|| format!("report {}: unknown kind {:?}", row.id, row.kind))?;
        Ok(ListedReport {
            id: row.id,
            received_at: chrono::DateTime::from_timestamp_millis(row.received_at)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default(),
            channel: channel.as_str(),
            provider: channel.provider().map(|p| p.as_str()),
            kind: kind.as_str(),
            matched: row.matched,
            unmatched: row.unmatched,
            raw_kept: row.raw_kept,
            recipients: serde_json::from_str(&row.recipients_json)
                .with_context(|| format!("report {}: its recipients", row.id))?,
        })
    }
}

pub fn run(settings: &Settings, limit: u32, json: bool) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let rows = runtime.block_on(async {
        let store = Store::connect(&settings.database()?).await?;
        let mut tx = store.begin_read().await?;
        let rows = bounce_reports::list_reports(&mut tx, i64::from(limit)).await?;
        tx.commit().await?;
        store.close().await;
        anyhow::Ok(rows)
    })?;
    let reports = rows
        .into_iter()
        .map(ListedReport::from_row)
        .collect::<anyhow::Result<Vec<_>>>()?;
    if json {
        for report in &reports {
            println!("{}", serde_json::to_string(report)?);
        }
    } else {
        print_table(&reports);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(reports: &[ListedReport]) {
    if reports.is_empty() {
        println!("no reports yet");
        return;
    }
    println!(
        "{:>6}  {:<20}  {:<16}  {:<10}  {:>7}  {:>9}  first recipient",
        "id", "received (UTC)", "via", "kind", "matched", "unmatched"
    );
    for report in reports {
        let via = match report.provider {
            Some(provider) => format!("webhook/{provider}"),
            None => report.channel.to_string(),
        };
        println!(
            "{:>6}  {:<20}  {:<16}  {:<10}  {:>7}  {:>9}  {}",
            report.id,
            report.received_at,
            via,
            report.kind,
            report.matched,
            report.unmatched,
            first_recipient(&report.recipients)
        );
    }
}

/// `address status class`, with anything a terminal would act on taken out:
/// the text comes from whoever sent the report.
fn first_recipient(recipients: &serde_json::Value) -> String {
    let Some(first) = recipients.as_array().and_then(|all| all.first()) else {
        return String::new();
    };
    let field = |name: &str| first.get(name).and_then(|v| v.as_str()).unwrap_or("");
    let text = format!(
        "{} {} {}",
        field("address"),
        field("status"),
        field("class")
    );
    let count = recipients.as_array().map_or(0, Vec::len);
    let more = if count > 1 {
        format!(" (+{})", count - 1)
    } else {
        String::new()
    };
    let clean: String = text.chars().filter(|c| !c.is_control()).take(80).collect();
    format!("{}{more}", clean.trim())
}
