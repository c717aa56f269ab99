//! Reports that arrive as mail: one message on stdin (an MTA pipe), or a
//! backlog of Maildir folders, mbox files and single messages.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::Settings;
use crate::store::{now_millis, Store};

use super::record::{Channel, Incoming, RecordError, RecordOutcome, Recorder};

/// The most of one message that is read: real bounces are a few kilobytes
/// to a few megabytes (a returned attachment); what matters (headers, the
/// delivery status, the returned headers) comes first. The rest is read
/// and dropped, so memory stays bounded and the MTA sees the whole message
/// taken.
pub const MAX_MESSAGE_BYTES: usize = 25 * 1024 * 1024;

/// How long `bounces process` waits for another writer's lock. Short: a
/// bounce is never urgent, and exiting 75 costs only a retry from the MTA's
/// queue minutes later, while a delivery agent kept waiting holds one of
/// the MTA's limited local-delivery processes. Three seconds still outlasts
/// every write transaction Herald makes (a send commits a batch in
/// milliseconds).
pub const PIPE_BUSY_TIMEOUT: Duration = Duration::from_secs(3);

/// A message read under [`MAX_MESSAGE_BYTES`].
#[derive(Debug)]
pub struct CappedMessage {
    pub bytes: Vec<u8>,
    /// The size of the whole input, dropped part included.
    pub total_len: u64,
}

impl CappedMessage {
    pub fn truncated(&self) -> bool {
        self.total_len > self.bytes.len() as u64
    }
}

/// Reads up to `cap` bytes, then reads and drops the rest.
pub fn read_capped(reader: impl Read, cap: usize) -> std::io::Result<CappedMessage> {
    let mut bytes = Vec::new();
    let mut reader = reader;
    let kept = (&mut reader).take(cap as u64).read_to_end(&mut bytes)? as u64;
    let dropped = std::io::copy(&mut reader, &mut std::io::sink())?;
    Ok(CappedMessage {
        bytes,
        total_len: kept + dropped,
    })
}

/// `herald bounces process`: records one message from an MTA. `recipient`
/// is the envelope recipient, where the VERP tag is.
pub async fn process_message(
    settings: Arc<Settings>,
    raw: &[u8],
    recipient: Option<&str>,
) -> Result<RecordOutcome, RecordError> {
    let location = settings.database().map_err(RecordError::from_open)?;
    let store = Store::connect_with_busy_timeout(&location, PIPE_BUSY_TIMEOUT)
        .await
        .map_err(RecordError::from_open)?;
    let recorder = Recorder::new(store.clone(), settings);
    let incoming = Incoming {
        channel: Channel::Pipe,
        raw,
        verp_address: recipient,
        external_id: None,
        report: super::parse(raw),
    };
    let outcome = recorder.record(incoming, now_millis()).await;
    store.close().await;
    outcome
}

/// What an import did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ImportSummary {
    pub messages: usize,
    /// Newly recorded reports by kind (`bounce`, `complaint`, ...).
    pub by_kind: BTreeMap<&'static str, usize>,
    pub matched: usize,
    pub unmatched: usize,
    /// Messages recorded before (by an earlier import, the pipe or IMAP).
    pub duplicates: usize,
    /// Messages cut to [`MAX_MESSAGE_BYTES`].
    pub truncated: usize,
    /// Files or folders that could not be read, with why; the rest went on.
    pub errors: Vec<String>,
}

/// `herald bounces import`: every message under `paths`. A path that
/// cannot be read is noted and skipped; a database that cannot be written
/// stops the import (run it again: what was recorded is skipped as a
/// duplicate).
pub async fn import_paths(
    recorder: &Recorder,
    paths: &[PathBuf],
) -> Result<ImportSummary, RecordError> {
    let mut summary = ImportSummary::default();
    for path in paths {
        let messages = match messages_in(path) {
            Ok(messages) => messages,
            Err(error) => {
                summary
                    .errors
                    .push(format!("{}: {error:#}", path.display()));
                continue;
            }
        };
        for message in messages {
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    summary.errors.push(format!("{error:#}"));
                    continue;
                }
            };
            record_one(recorder, &message, &mut summary).await?;
        }
    }
    Ok(summary)
}

async fn record_one(
    recorder: &Recorder,
    message: &CappedMessage,
    summary: &mut ImportSummary,
) -> Result<(), RecordError> {
    let report = super::parse(&message.bytes);
    let kind = report.kind.as_str();
    let incoming = Incoming {
        channel: Channel::Import,
        raw: &message.bytes,
        verp_address: None,
        external_id: None,
        report,
    };
    let outcome = recorder.record(incoming, now_millis()).await?;
    summary.messages += 1;
    summary.truncated += usize::from(message.truncated());
    if outcome.duplicate {
        summary.duplicates += 1;
    } else {
        *summary.by_kind.entry(kind).or_default() += 1;
        summary.matched += outcome.matched;
        summary.unmatched += outcome.unmatched;
    }
    Ok(())
}

type Messages = Box<dyn Iterator<Item = anyhow::Result<CappedMessage>>>;

/// The messages in a Maildir (its `new/` and `cur/`), an mbox file (it
/// starts with a `From ` line), or a single message file.
fn messages_in(path: &Path) -> anyhow::Result<Messages> {
    use anyhow::Context;
    let metadata = std::fs::metadata(path).context("cannot read it")?;
    if metadata.is_dir() {
        return maildir_messages(path);
    }
    let mut file = std::fs::File::open(path).context("cannot open it")?;
    let mut start = [0u8; 5];
    let read = read_prefix(&mut file, &mut start).context("cannot read it")?;
    let file = std::fs::File::open(path).context("cannot open it")?;
    if &start[..read] == b"From " {
        let display = path.display().to_string();
        let iterator =
            mail_parser::mailbox::mbox::MessageIterator::new(std::io::BufReader::new(file))
                .enumerate()
                .map(move |(index, message)| {
                    let message = message
                        .with_context(|| format!("{display}: reading message {}", index + 1))?;
                    let mut bytes = message.unwrap_contents();
                    let total_len = bytes.len() as u64;
                    bytes.truncate(MAX_MESSAGE_BYTES);
                    Ok(CappedMessage { bytes, total_len })
                });
        return Ok(Box::new(iterator));
    }
    let message = read_capped(file, MAX_MESSAGE_BYTES).context("cannot read it")?;
    Ok(Box::new(std::iter::once(Ok(message))))
}

fn read_prefix(file: &mut std::fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// A Maildir's messages, `new/` then `cur/`, each folder in name order
/// (delivery order, for the usual time-based names). `tmp/` holds messages
/// still being written and is left alone.
fn maildir_messages(path: &Path) -> anyhow::Result<Messages> {
    use anyhow::Context;
    let folders: Vec<PathBuf> = ["new", "cur"]
        .iter()
        .map(|name| path.join(name))
        .filter(|folder| folder.is_dir())
        .collect();
    if folders.is_empty() {
        anyhow::bail!("a folder, but not a Maildir (it has neither new/ nor cur/)");
    }
    let mut files = Vec::new();
    for folder in folders {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&folder)
            .with_context(|| format!("listing {}", folder.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        files.extend(names);
    }
    Ok(Box::new(files.into_iter().map(|file| {
        let opened = std::fs::File::open(&file)
            .with_context(|| format!("{}: cannot open it", file.display()))?;
        read_capped(opened, MAX_MESSAGE_BYTES)
            .with_context(|| format!("{}: cannot read it", file.display()))
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_is_capped_and_the_rest_drained() {
        let input = vec![b'x'; 1000];
        let mut cursor = std::io::Cursor::new(input);
        let message = read_capped(&mut cursor, 100).unwrap();
        assert_eq!(message.bytes.len(), 100);
        assert_eq!(message.total_len, 1000);
        assert!(message.truncated());
        assert_eq!(cursor.position(), 1000, "the rest was read");
        let small = read_capped(&b"short"[..], 100).unwrap();
        assert_eq!(
            (small.bytes.as_slice(), small.truncated()),
            (&b"short"[..], false)
        );
    }
}
