//! `herald subscribers ...`: the list from the command line. The rules
//! (who may be added, confirmation mails, erasure) are the subscription
//! stage's, the same the web form follows.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use crate::cli::{StateArg, SubscribersCommand};
use crate::config::Settings;
use crate::domain::{
    neutralise_formula, restore_formula, terminal_safe, SubscriberEmail, SubscriberName,
};
use crate::render::Templates;
use crate::store::subscribers::{self, Source, Subscriber, SubscriberState};
use crate::store::{now_millis, Millis, Store};
use crate::subscription::{
    EraseOutcome, ImportReport, ImportRow, SubscribeOutcome, SubscribeRequest, Subscriptions,
    UnsubscribeOutcome,
};

use super::{success, user_error, UserError};

/// Rows per import transaction. Each commit rewrites every index page it
/// touched, and the unsubscribe-token index is random, so 5,000 rows take
/// half the CPU time of 1,000 (100,000 rows: 1.0 s against 2.1 s). A crash
/// loses at most one chunk, and rerunning the import fills it in.
const IMPORT_CHUNK_ROWS: usize = 5_000;

pub fn run(settings: &Settings, command: &SubscribersCommand) -> anyhow::Result<ExitCode> {
    // The CLI is synchronous; sqlx is not. One small runtime per command.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = Store::connect(&settings.database()?).await?;
        let result = dispatch(settings, &store, command).await;
        store.close().await;
        result
    })
}

async fn dispatch(
    settings: &Settings,
    store: &Store,
    command: &SubscribersCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        SubscribersCommand::Add {
            email,
            name,
            confirmed,
        } => add(settings, store, email, name.as_deref(), *confirmed).await,
        SubscribersCommand::Remove { email, erase } => remove(settings, store, email, *erase).await,
        SubscribersCommand::List { state, json } => list(store, parse_state(state), *json).await,
        SubscribersCommand::Count => count(store).await,
        SubscribersCommand::Import { file, confirmed } => {
            import(settings, store, file, *confirmed).await
        }
        SubscribersCommand::Export { state } => export(store, parse_state(state)).await,
    }
}

fn parse_state(state: &Option<StateArg>) -> Option<SubscriberState> {
    state.map(SubscriberState::from)
}

fn subscriptions(settings: &Settings) -> anyhow::Result<Subscriptions> {
    let templates = Templates::load(&settings.templates_dir()).map_err(UserError::wrap)?;
    Subscriptions::new(Arc::new(settings.clone()), &templates).map_err(UserError::wrap)
}

fn parse_email(raw: &str) -> anyhow::Result<SubscriberEmail> {
    SubscriberEmail::parse(raw).map_err(|e| user_error(e.to_string()))
}

async fn add(
    settings: &Settings,
    store: &Store,
    raw_email: &str,
    raw_name: Option<&str>,
    confirmed: bool,
) -> anyhow::Result<ExitCode> {
    let email = parse_email(raw_email)?;
    let name = SubscriberName::parse_optional(raw_name).map_err(|e| user_error(e.to_string()))?;
    let subscriptions = subscriptions(settings)?;
    let request = SubscribeRequest {
        email: &email,
        name: name.as_ref(),
        source: Source::Cli,
        consent: None,
        confirmed,
    };
    let mut tx = store.begin().await?;
    let outcome = subscriptions
        .subscribe(&mut tx, &request, now_millis())
        .await?;
    tx.commit().await?;
    match outcome {
        SubscribeOutcome::Added(SubscriberState::Active) => {
            println!("added {email} (active)")
        }
        SubscribeOutcome::Added(_) => {
            println!("added {email} (pending); a confirmation mail is queued")
        }
        SubscribeOutcome::ConfirmationResent => {
            println!("{email} is pending; a new confirmation mail is queued")
        }
        SubscribeOutcome::ConfirmationLimitReached => println!(
            "{email} is pending and was sent {} confirmation mail(s) in the last hour; none queued",
            settings.server.confirmations_per_address_per_hour
        ),
        SubscribeOutcome::Activated => println!("confirmed {email} (was pending)"),
        SubscribeOutcome::Resubscribed => println!("{email} is pending again"),
        SubscribeOutcome::Unchanged(state) => {
            println!(
                "{email} is already on the list ({}); unchanged",
                state.as_str()
            );
            if matches!(state, SubscriberState::Unsubscribed) {
                println!("they can subscribe again themselves on the form");
            }
        }
        SubscribeOutcome::Suppressed => {
            return Err(user_error(format!(
                "{email} was erased on request and stays suppressed; not added"
            )))
        }
    }
    success()
}

async fn remove(
    settings: &Settings,
    store: &Store,
    raw_email: &str,
    erase: bool,
) -> anyhow::Result<ExitCode> {
    let email = parse_email(raw_email)?;
    let subscriptions = subscriptions(settings)?;
    let now = now_millis();
    let mut tx = store.begin().await?;
    if erase {
        let outcome = subscriptions.erase(&mut tx, &email, now).await?;
        tx.commit().await?;
        match outcome {
            EraseOutcome::Erased => println!(
                "erased {email}: subscriber, history, tokens and the address in past deliveries; \
                 only a hash remains, so it is never added again"
            ),
            EraseOutcome::NotOnList => {
                println!("{email} was not on the list; it is now suppressed all the same")
            }
        }
        return success();
    }
    let outcome = subscriptions.remove(&mut tx, &email, now).await?;
    tx.commit().await?;
    match outcome {
        UnsubscribeOutcome::Unsubscribed => println!("unsubscribed {email}"),
        UnsubscribeOutcome::AlreadyOff(state) => {
            println!("{email} is already {}; unchanged", state.as_str())
        }
        UnsubscribeOutcome::Unknown => {
            return Err(user_error(format!("{email} is not on the list")))
        }
    }
    success()
}

fn format_time(millis: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// A subscriber as `list --json` and `export` show them: times as RFC 3339,
/// no token.
#[derive(Serialize)]
struct SubscriberView<'a> {
    email: Cow<'a, str>,
    name: Option<Cow<'a, str>>,
    state: &'static str,
    source: &'static str,
    created_at: String,
    state_changed_at: String,
    consent_at: Option<String>,
    consent_ip: Option<&'a str>,
    consent_user_agent: Option<Cow<'a, str>>,
}

impl<'a> From<&'a Subscriber> for SubscriberView<'a> {
    fn from(s: &'a Subscriber) -> Self {
        SubscriberView {
            email: Cow::Borrowed(&s.email),
            name: s.name.as_deref().map(Cow::Borrowed),
            state: s.state.as_str(),
            source: s.source.as_str(),
            created_at: format_time(s.created_at),
            state_changed_at: format_time(s.state_changed_at),
            consent_at: s.consent_at.map(format_time),
            consent_ip: s.consent_ip.as_deref(),
            consent_user_agent: s.consent_user_agent.as_deref().map(Cow::Borrowed),
        }
    }
}

async fn load_list(
    store: &Store,
    state: Option<SubscriberState>,
) -> anyhow::Result<Vec<Subscriber>> {
    let mut tx = store.begin_read().await?;
    let list = subscribers::list_subscribers(&mut tx, state).await?;
    tx.commit().await?;
    Ok(list)
}

async fn list(
    store: &Store,
    state: Option<SubscriberState>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let list = load_list(store, state).await?;
    let mut out = std::io::stdout().lock();
    if json {
        let views: Vec<SubscriberView> = list.iter().map(SubscriberView::from).collect();
        serde_json::to_writer_pretty(&mut out, &views)?;
        writeln!(out)?;
        return success();
    }
    let width = list.iter().map(|s| s.email.len()).max().unwrap_or(5).max(5);
    writeln!(
        out,
        "{:<width$}  {:<12}  {:<6}  {:<20}  NAME",
        "EMAIL", "STATE", "SOURCE", "CREATED"
    )?;
    for s in &list {
        writeln!(
            out,
            "{:<width$}  {:<12}  {:<6}  {:<20}  {}",
            s.email,
            s.state.as_str(),
            s.source.as_str(),
            format_time(s.created_at),
            terminal_safe(s.name.as_deref().unwrap_or(""))
        )?;
    }
    success()
}

async fn count(store: &Store) -> anyhow::Result<ExitCode> {
    let mut tx = store.begin_read().await?;
    let counts = subscribers::count_by_state(&mut tx).await?;
    tx.commit().await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    for state in SubscriberState::ALL {
        let n = counts
            .iter()
            .find(|(s, _)| s == state.as_str())
            .map_or(0, |(_, n)| *n);
        println!("{:<13} {n}", state.as_str());
    }
    println!("{:<13} {total}", "total");
    success()
}

async fn export(store: &Store, state: Option<SubscriberState>) -> anyhow::Result<ExitCode> {
    let list = load_list(store, state).await?;
    let mut writer = csv::Writer::from_writer(std::io::stdout().lock());
    for s in &list {
        let mut view = SubscriberView::from(s);
        view.email = neutralise_formula(view.email);
        view.name = view.name.map(neutralise_formula);
        view.consent_user_agent = view.consent_user_agent.map(neutralise_formula);
        writer.serialize(view)?;
    }
    if list.is_empty() {
        // serialize writes the header with the first row; an empty export
        // still gets one, so it imports as an empty file.
        writer.write_record([
            "email",
            "name",
            "state",
            "source",
            "created_at",
            "state_changed_at",
            "consent_at",
            "consent_ip",
            "consent_user_agent",
        ])?;
    }
    writer.flush()?;
    success()
}

async fn import(
    settings: &Settings,
    store: &Store,
    file: &Path,
    confirmed: bool,
) -> anyhow::Result<ExitCode> {
    let subscriptions = subscriptions(settings)?;
    let shown = file.display();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(file)
        .map_err(|e| user_error(format!("{shown}: {e}")))?;
    let headers = reader
        .headers()
        .map_err(|e| user_error(format!("{shown}: the header row: {e}")))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(name))
    };
    let Some(email_column) = column("email") else {
        return Err(user_error(format!(
            "{shown}: the header row has no `email` column (found: {})",
            headers.iter().collect::<Vec<_>>().join(", ")
        )));
    };
    let name_column = column("name");

    let mut report = ImportReport::default();
    let mut bad_rows = 0u64;
    let mut chunk = Vec::with_capacity(IMPORT_CHUNK_ROWS);
    let mut record = csv::StringRecord::new();
    let mut stderr = std::io::stderr().lock();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                bad_rows += 1;
                let line = e.position().map_or(line, |p| p.line());
                writeln!(stderr, "{shown}:{line}: error: {e}")?;
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        match parse_row(&record, line, email_column, name_column) {
            Ok(row) => chunk.push(row),
            Err(message) => {
                bad_rows += 1;
                writeln!(stderr, "{shown}:{line}: error: {message}")?;
            }
        }
        if chunk.len() == IMPORT_CHUNK_ROWS {
            report.absorb(import_chunk(store, &subscriptions, &chunk, confirmed).await?);
            chunk.clear();
        }
    }
    report.absorb(import_chunk(store, &subscriptions, &chunk, confirmed).await?);
    for line in &report.suppressed_lines {
        writeln!(
            stderr,
            "{shown}:{line}: refused: this address was erased on request and stays suppressed"
        )?;
    }
    let state = if confirmed {
        "active"
    } else {
        "pending, a confirmation mail queued for each"
    };
    println!(
        "imported {} ({state}); {} already on the list, unchanged; {} suppressed; {} bad row(s)",
        report.added,
        report.already_on_list,
        report.suppressed_lines.len(),
        bad_rows
    );
    let refused = bad_rows + report.suppressed_lines.len() as u64;
    if refused > 0 {
        return Err(user_error(format!(
            "{refused} row(s) of {shown} were not imported (listed above)"
        )));
    }
    success()
}

fn parse_row(
    record: &csv::StringRecord,
    line: u64,
    email_column: usize,
    name_column: Option<usize>,
) -> Result<ImportRow, String> {
    let raw_email = restore_formula(record.get(email_column).unwrap_or(""));
    let email = SubscriberEmail::parse(raw_email).map_err(|e| e.to_string())?;
    let name = SubscriberName::parse_optional(
        name_column.and_then(|c| record.get(c)).map(restore_formula),
    )
    .map_err(|e| e.to_string())?;
    Ok(ImportRow { line, email, name })
}

async fn import_chunk(
    store: &Store,
    subscriptions: &Subscriptions,
    rows: &[ImportRow],
    confirmed: bool,
) -> anyhow::Result<ImportReport> {
    if rows.is_empty() {
        return Ok(ImportReport::default());
    }
    let mut tx = store.begin().await?;
    let report = subscriptions
        .import_chunk(&mut tx, rows, confirmed, now_millis())
        .await?;
    tx.commit().await?;
    Ok(report)
}
