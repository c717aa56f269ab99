//! `herald status`: where a campaign stands.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use super::user_error;
use crate::bounce::policy::{rates, Rates};
use crate::config::Settings;
use crate::domain::zone_name;
use crate::send::overview::average_rate_per_min;
use crate::store::campaigns::{self, Campaign};
use crate::store::clicks::{self, LinkClicks};
use crate::store::deliveries::{
    self, CampaignReportCounts, DeliveryCounts, DeliveryState, ErrorGroup, Queue,
};
use crate::store::relay_states::{self, Circuit, RelayState};
use crate::store::Store;

/// Everything `herald status` shows: the scheduled sends, then where the
/// latest (or the named issue's) campaign stands.
#[derive(Serialize)]
struct Report {
    /// Absent when no campaign has started yet.
    #[serde(flatten)]
    latest: Option<Status>,
    /// The scheduled campaigns (of the named issue, when one is named), the
    /// next to start first.
    scheduled: Vec<ScheduledView>,
}

#[derive(Serialize)]
struct ScheduledView {
    campaign: i64,
    issue: String,
    subject: String,
    /// RFC 3339, in the site's time zone.
    scheduled_at: String,
    time_zone: String,
    #[serde(skip)]
    millis: i64,
}

#[derive(Serialize)]
struct Status {
    campaign: i64,
    issue: String,
    subject: String,
    state: &'static str,
    pause_reason: Option<String>,
    /// RFC 3339 in the site's time zone, for a campaign that was scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_at: Option<String>,
    counts: DeliveryCounts,
    /// Messages per second between the first and the last accepted one.
    send_rate: Option<f64>,
    errors: Vec<ErrorGroup>,
    /// The newest campaigns' bounce and complaint rates.
    reports: Vec<CampaignReports>,
    /// With `[tracking] clicks`: the most clicked links (people first).
    links: Vec<LinkClicks>,
    /// Each configured relay's circuit breaker, as the last sending run
    /// that changed it left it.
    relays: Vec<RelayStatus>,
}

#[derive(Serialize)]
struct RelayStatus {
    relay: String,
    state: Circuit,
    /// Why it last changed; none when nothing was ever recorded.
    reason: Option<String>,
    changed_at: Option<String>,
    /// When an open breaker lets a probe message through.
    open_until: Option<String>,
    /// The sending run (machine:pid:id) that changed it.
    changed_by: Option<String>,
}

/// The configured relays' breakers, in the config's order; a relay with
/// no stored row has never failed: closed.
fn relay_statuses(settings: &Settings, stored: &[RelayState]) -> Vec<RelayStatus> {
    let time = |millis: i64| {
        chrono::DateTime::from_timestamp_millis(millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    settings
        .relays()
        .into_iter()
        .map(
            |relay| match stored.iter().find(|s| s.relay == relay.name) {
                Some(row) => RelayStatus {
                    relay: relay.name,
                    state: row.state,
                    reason: Some(row.reason.clone()),
                    changed_at: time(row.changed_at),
                    open_until: row.open_until.and_then(time),
                    changed_by: Some(row.changed_by.clone()),
                },
                None => RelayStatus {
                    relay: relay.name,
                    state: Circuit::Closed,
                    reason: None,
                    changed_at: None,
                    open_until: None,
                    changed_by: None,
                },
            },
        )
        .collect()
}

/// Links `herald status` shows.
const TOP_LINKS: i64 = 10;

/// Campaigns whose rates `herald status` shows.
const RATE_CAMPAIGNS: i64 = 10;

#[derive(Serialize)]
struct CampaignReports {
    #[serde(flatten)]
    counts: CampaignReportCounts,
    #[serde(flatten)]
    rates: Rates,
}

pub fn run(settings: &Settings, issue: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let zone = settings.time_zone()?;
        let store = Store::connect(&settings.database()?).await?;
        let mut tx = store.begin_read().await?;
        let slug = issue.map(|issue| slug_of(settings, issue)).transpose()?;
        let campaign: Option<Campaign> = match &slug {
            Some(slug) => campaigns::find_current_campaign(&mut tx, slug).await?,
            None => campaigns::find_latest_campaign(&mut tx).await?,
        };
        let scheduled: Vec<ScheduledView> = campaigns::list_scheduled_campaigns(&mut tx)
            .await?
            .into_iter()
            .filter(|c| slug.as_ref().is_none_or(|slug| *slug == c.issue_slug))
            .map(|c| ScheduledView {
                campaign: c.id,
                issue: c.issue_slug,
                subject: c.subject,
                scheduled_at: rfc3339_in(c.scheduled_at, &zone),
                time_zone: zone_name(&zone),
                millis: c.scheduled_at,
            })
            .collect();
        let latest = match campaign {
            Some(campaign) => Some(campaign_status(&mut tx, settings, campaign, &zone).await?),
            None => None,
        };
        tx.commit().await?;
        if latest.is_none() && scheduled.is_empty() {
            return Err(user_error(match issue {
                Some(issue) => format!("{issue} has not been sent"),
                None => "nothing has been sent yet".to_string(),
            }));
        }
        let report = Report { latest, scheduled };
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_scheduled(&report.scheduled);
            if let Some(status) = &report.latest {
                print_status(status);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Where one campaign stands: its counts, rate, errors, and the newest
/// campaigns' bounce and complaint rates.
async fn campaign_status(
    tx: &mut crate::store::Tx<'_>,
    settings: &Settings,
    campaign: Campaign,
    zone: &jiff::tz::TimeZone,
) -> anyhow::Result<Status> {
    let counts = deliveries::count_deliveries_by_state(tx, Queue::Campaign(campaign.id)).await?;
    let (first, last, sent) = deliveries::sent_time_span(tx, campaign.id).await?;
    let errors = deliveries::error_groups(tx, campaign.id, 10).await?;
    let report_counts = deliveries::campaign_report_counts(tx, RATE_CAMPAIGNS).await?;
    let links = clicks::ranked_links(tx, campaign.id, TOP_LINKS).await?;
    let stored_relays = relay_states::relay_states(tx).await?;
    let reports = report_counts
        .into_iter()
        .map(|counts| CampaignReports {
            rates: rates(
                counts.sent,
                counts.hard_bounces,
                counts.soft_bounces,
                counts.complaints,
            ),
            counts,
        })
        .collect();
    // The dashboard's average, per second.
    let send_rate = average_rate_per_min((first, last, sent)).map(|per_min| per_min / 60.0);
    Ok(Status {
        campaign: campaign.id,
        issue: campaign.issue_slug,
        subject: campaign.subject,
        state: campaign.state.as_str(),
        pause_reason: campaign.pause_reason,
        scheduled_at: campaign.scheduled_at.map(|at| rfc3339_in(at, zone)),
        counts,
        send_rate,
        errors,
        reports,
        links,
        relays: relay_statuses(settings, &stored_relays),
    })
}

/// A time column as RFC 3339 with the offset of `zone` at that instant.
fn rfc3339_in(millis: i64, zone: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(millis) {
        Ok(at) => at
            .to_zoned(zone.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        Err(_) => format!("{millis} ms (out of range)"),
    }
}

fn print_scheduled(scheduled: &[ScheduledView]) {
    if scheduled.is_empty() {
        return;
    }
    println!("scheduled:");
    for view in scheduled {
        let when = jiff::Timestamp::from_millisecond(view.millis)
            .map(|at| at.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        println!(
            "  campaign {} · {} · {} · {} ({}; {when})",
            view.campaign, view.issue, view.subject, view.scheduled_at, view.time_zone
        );
    }
}

/// An issue given as a file path (its slug is read from it) or as a slug.
pub(crate) fn slug_of(settings: &Settings, issue: &str) -> anyhow::Result<String> {
    let path = Path::new(issue);
    if path.is_file() {
        let checked = crate::issue::read_issue(path, &settings.site.base_url)?;
        let issue = checked
            .issue
            .ok_or_else(|| user_error(format!("{issue} has errors; run `herald check {issue}`")))?;
        Ok(issue.slug.to_string())
    } else {
        Ok(issue.to_string())
    }
}

fn print_status(status: &Status) {
    println!(
        "campaign {} · {} · {}",
        status.campaign, status.issue, status.subject
    );
    match (&status.pause_reason, &status.scheduled_at) {
        (Some(reason), _) => println!("state: {} ({reason})", status.state),
        (None, Some(at)) => println!("state: {} (scheduled for {at})", status.state),
        (None, None) => println!("state: {}", status.state),
    }
    for state in DeliveryState::ALL {
        println!("  {:<9} {}", state.as_str(), status.counts.get(state));
    }
    if let Some(rate) = status.send_rate {
        println!("send rate: {rate:.0} messages/s");
    }
    if !status.errors.is_empty() {
        println!("most common errors:");
        for group in &status.errors {
            println!(
                "  {:>6} × {} {} {} {}",
                group.count,
                group.state,
                group.code.map(|c| c.to_string()).unwrap_or_default(),
                group.enhanced_code.as_deref().unwrap_or(""),
                group.reply.as_deref().unwrap_or("")
            );
        }
    }
    print_relays(&status.relays);
    print_reports(&status.reports);
    print_links(&status.links);
}

/// The relays' breakers: always with several relays, and with one only
/// when it has been in trouble.
fn print_relays(relays: &[RelayStatus]) {
    if relays.len() < 2 && relays.iter().all(|r| r.reason.is_none()) {
        return;
    }
    println!("relays:");
    for relay in relays {
        let mut line = format!("  {:<24} {}", relay.relay, relay.state.as_str());
        if let Some(until) = &relay.open_until {
            line.push_str(&format!(" until {until}"));
        }
        if let (Some(reason), Some(at)) = (&relay.reason, &relay.changed_at) {
            line.push_str(&format!(" since {at}: {reason}"));
        }
        println!("{line}");
    }
}

/// The campaign's most clicked links, when its clicks were tracked.
fn print_links(links: &[LinkClicks]) {
    if links.is_empty() {
        return;
    }
    println!("most clicked links (people, and bots and mail scanners apart):");
    println!("  {:>4} {:>7} {:>7}  url", "link", "people", "bots");
    for link in links {
        println!(
            "  {:>4} {:>7} {:>7}  {}",
            link.link_index,
            link.human_clicks,
            link.bot_clicks,
            crate::domain::terminal_safe(&link.url)
        );
    }
}

/// Each campaign's rates, and a bold warning (on a terminal) for any
/// campaign past the levels at which mailbox providers act.
fn print_reports(reports: &[CampaignReports]) {
    if reports
        .iter()
        .all(|r| r.counts.hard_bounces + r.counts.soft_bounces + r.counts.complaints == 0)
    {
        return;
    }
    println!("bounces and complaints, of what was sent:");
    println!(
        "  {:>8}  {:<24} {:>8} {:>12} {:>12} {:>14}",
        "campaign", "issue", "sent", "hard", "soft", "complaints"
    );
    let percent = |n: i64, rate: f64| format!("{n} ({:.2}%)", rate * 100.0);
    for report in reports {
        let c = &report.counts;
        println!(
            "  {:>8}  {:<24} {:>8} {:>12} {:>12} {:>14}",
            c.campaign_id,
            c.issue_slug,
            c.sent,
            percent(c.hard_bounces, report.rates.hard_bounce_rate),
            percent(c.soft_bounces, report.rates.soft_bounce_rate),
            percent(c.complaints, report.rates.complaint_rate),
        );
    }
    let (bold, plain) = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("", "")
    };
    for report in reports {
        for warning in &report.rates.warnings {
            println!(
                "{bold}WARNING: campaign {} ({}): {warning}{plain}",
                report.counts.campaign_id, report.counts.issue_slug
            );
        }
    }
}
