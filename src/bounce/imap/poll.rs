//! One poll of the bounce mailbox, and the loop `herald serve` runs.
//!
//! Only bounces and complaints are consumed (recorded, then moved to the
//! processed folder). Everything else stays where it is, marked with a
//! keyword so the next poll skips it: a person may still need to read a
//! vacation reply or a message sent to the bounce address by hand. That is
//! the mistake of listmonk's POP reader (its issue 1334), which deleted
//! every message in the box.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::TryStreamExt;

use super::config::ImapConfig;
use super::session::{connect, step, ImapSession};
use super::ImapError;
use crate::bounce::{parse, Channel, Incoming, RecordError, Recorder, ReportKind};
use crate::store::now_millis;

/// Bigger messages are not loaded into memory: they are marked
/// `$HeraldTooLarge` and left for a person. A bounce with its returned
/// message attached is rarely over a few hundred kilobytes; 10 MiB leaves
/// room for a returned newsletter with images.
pub const MAX_MESSAGE_BYTES: u32 = 10 * 1024 * 1024;

/// Messages handled per poll; the rest wait for the next one, which comes
/// at once when a poll stopped at this cap.
const BATCH: usize = 200;

/// Keywords (IMAP user flags) that mark a message the poller has seen and
/// leaves in the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// Not a bounce or a complaint: an auto-reply, a delay notice, ordinary
    /// mail.
    Ignored,
    /// Over [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// Recording failed for a reason other than a busy database; retried
    /// once a person removes the keyword.
    Failed,
}

impl Keyword {
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Ignored => "$HeraldIgnored",
            Keyword::TooLarge => "$HeraldTooLarge",
            Keyword::Failed => "$HeraldFailed",
        }
    }
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    TooLarge,
    /// A delay, an auto-reply or no report at all: recorded (it changes
    /// nothing) and left for a person.
    NotAFailure(ReportKind),
    Recorded {
        duplicate: bool,
    },
    /// The database is busy or down: try again next poll.
    Unavailable,
    Failed,
}

/// What to do with the message in the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    MoveToProcessed,
    Mark(Keyword),
    Leave,
}

/// The mailbox rule, apart from any I/O: a message leaves the polled
/// mailbox only once it is safely recorded (a duplicate was recorded
/// before), and nothing is ever deleted that is not a recorded report.
pub fn disposition(verdict: Verdict) -> Disposition {
    match verdict {
        Verdict::Recorded { .. } => Disposition::MoveToProcessed,
        Verdict::Unavailable => Disposition::Leave,
        Verdict::TooLarge => Disposition::Mark(Keyword::TooLarge),
        Verdict::NotAFailure(_) => Disposition::Mark(Keyword::Ignored),
        Verdict::Failed => Disposition::Mark(Keyword::Failed),
    }
}

/// Which reports the mailbox consumes. Auto-replies and delays change
/// nothing under the policy, and a person may want to read them.
fn is_consumed(kind: ReportKind) -> bool {
    matches!(kind, ReportKind::Bounce | ReportKind::Complaint)
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollSummary {
    /// Reports recorded now and moved.
    pub recorded: usize,
    /// Reports recorded by an earlier poll (moved now).
    pub duplicates: usize,
    /// Left in place, marked `$HeraldIgnored`.
    pub ignored: usize,
    pub too_large: usize,
    pub failed: usize,
    /// Left for the next poll: the database was unavailable.
    pub deferred: usize,
    /// The poll stopped at its batch cap; more messages are waiting.
    pub more_waiting: bool,
}

impl PollSummary {
    fn count(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Recorded { duplicate: false } => self.recorded += 1,
            Verdict::Recorded { duplicate: true } => self.duplicates += 1,
            Verdict::NotAFailure(_) => self.ignored += 1,
            Verdict::TooLarge => self.too_large += 1,
            Verdict::Failed => self.failed += 1,
            Verdict::Unavailable => self.deferred += 1,
        }
    }

    fn is_idle(&self) -> bool {
        *self == PollSummary::default()
    }
}

/// Connects, handles the messages not seen before (up to a batch), and
/// logs out. Tests drive this directly; `herald serve` runs it in
/// [`run_poller`].
pub async fn poll_once(config: &ImapConfig, recorder: &Recorder) -> Result<PollSummary, ImapError> {
    let mut session = connect(config).await?;
    let result = poll_session(&mut session, config, recorder).await;
    // Best effort: the work is done (or failed) either way.
    let _ = tokio::time::timeout(Duration::from_secs(10), session.logout()).await;
    result
}

/// What the server can do, learnt once per connection.
struct ServerSupport {
    /// RFC 6851 UID MOVE.
    moves: bool,
    /// RFC 4315 UID EXPUNGE, to expunge one message and not others a
    /// person flagged \Deleted.
    uid_expunge: bool,
}

async fn poll_session(
    session: &mut ImapSession,
    config: &ImapConfig,
    recorder: &Recorder,
) -> Result<PollSummary, ImapError> {
    let capabilities = step("CAPABILITY", session.capabilities()).await?;
    let support = ServerSupport {
        moves: capabilities.has_str("MOVE"),
        uid_expunge: capabilities.has_str("UIDPLUS"),
    };
    let processed = processed_folder_name(session, &config.processed_folder).await?;
    ensure_folder(session, &processed).await?;
    step(
        &format!("SELECT {:?}", config.mailbox),
        session.select(&config.mailbox),
    )
    .await?;
    drain_unsolicited(session);

    let mut uids = unseen_uids(session).await?;
    let mut summary = PollSummary {
        more_waiting: uids.len() > BATCH,
        ..PollSummary::default()
    };
    uids.truncate(BATCH);
    let sizes = message_sizes(session, &uids).await?;
    for uid in uids {
        // A message gone since the search (another client moved it) is
        // simply not there any more.
        let Some(&size) = sizes.get(&uid) else {
            continue;
        };
        let verdict = if size > MAX_MESSAGE_BYTES {
            tracing::warn!(
                uid,
                size,
                "a message in the bounce mailbox is too large to read; marked {}",
                Keyword::TooLarge.as_str()
            );
            Verdict::TooLarge
        } else {
            let Some(raw) = fetch_message(session, uid).await? else {
                continue;
            };
            examine(&raw, recorder).await
        };
        summary.count(verdict);
        apply(session, uid, disposition(verdict), &processed, &support).await?;
        if verdict == Verdict::Unavailable {
            // The next messages would meet the same busy database.
            break;
        }
    }
    Ok(summary)
}

/// Parses and records one message. Every message is recorded, as the pipe
/// records every message it is given (an auto-reply or a stray mail shows
/// in `herald bounces list` and changes nothing); only what is consumed
/// leaves the mailbox.
async fn examine(raw: &[u8], recorder: &Recorder) -> Verdict {
    let report = parse(raw);
    let kind = report.kind;
    let incoming = Incoming {
        channel: Channel::Imap,
        raw,
        // IMAP does not carry the envelope recipient; the recorder finds a
        // VERP tag in the report's Delivered-To and similar headers.
        verp_address: None,
        external_id: None,
        report,
    };
    match recorder.record(incoming, now_millis()).await {
        Ok(_) if !is_consumed(kind) => Verdict::NotAFailure(kind),
        Ok(outcome) => Verdict::Recorded {
            duplicate: outcome.duplicate,
        },
        Err(RecordError::Unavailable(e)) => {
            tracing::warn!("the database is unavailable; the report stays in the mailbox for the next poll: {e}");
            Verdict::Unavailable
        }
        Err(RecordError::Other(e)) => {
            tracing::error!(
                "recording a report from the bounce mailbox failed; it stays there marked {}: {e:#}",
                Keyword::Failed.as_str()
            );
            Verdict::Failed
        }
    }
}

/// The configured folder uses `/` between levels; the server may use `.`.
async fn processed_folder_name(
    session: &mut ImapSession,
    configured: &str,
) -> Result<String, ImapError> {
    let names: Vec<_> = step("LIST \"\" \"\" (the hierarchy delimiter)", async {
        session
            .list(Some(""), Some("\"\""))
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    drain_unsolicited(session);
    let delimiter = names
        .iter()
        .find_map(|name| name.delimiter().map(str::to_string))
        .unwrap_or_else(|| "/".to_string());
    Ok(configured.replace('/', &delimiter))
}

async fn ensure_folder(session: &mut ImapSession, folder: &str) -> Result<(), ImapError> {
    // async-imap sends the pattern as given; folder names were checked to
    // hold no quote, backslash or wildcard, so quoting is enough.
    let pattern = format!("\"{folder}\"");
    let existing: Vec<_> = step(&format!("LIST {folder:?}"), async {
        session
            .list(Some(""), Some(&pattern))
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    drain_unsolicited(session);
    if existing.is_empty() {
        step(&format!("CREATE {folder:?}"), session.create(folder)).await?;
        tracing::info!("created the IMAP folder {folder:?} for processed reports");
    }
    Ok(())
}

/// Messages not yet handled: not deleted and without one of our keywords.
async fn unseen_uids(session: &mut ImapSession) -> Result<Vec<u32>, ImapError> {
    let query = format!(
        "UNDELETED UNKEYWORD {} UNKEYWORD {} UNKEYWORD {}",
        Keyword::Ignored.as_str(),
        Keyword::TooLarge.as_str(),
        Keyword::Failed.as_str()
    );
    let found = step("UID SEARCH", session.uid_search(&query)).await?;
    drain_unsolicited(session);
    let mut uids: Vec<u32> = found.into_iter().collect();
    uids.sort_unstable();
    Ok(uids)
}

async fn message_sizes(
    session: &mut ImapSession,
    uids: &[u32],
) -> Result<HashMap<u32, u32>, ImapError> {
    if uids.is_empty() {
        return Ok(HashMap::new());
    }
    let set = uids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let fetches: Vec<_> = step("UID FETCH (RFC822.SIZE)", async {
        session
            .uid_fetch(&set, "(UID RFC822.SIZE)")
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    drain_unsolicited(session);
    Ok(fetches
        .iter()
        .filter_map(|fetch| Some((fetch.uid?, fetch.size?)))
        .collect())
}

/// The whole message, without setting \Seen (a person looking at the box
/// still sees what is new to them).
async fn fetch_message(session: &mut ImapSession, uid: u32) -> Result<Option<Vec<u8>>, ImapError> {
    let fetches: Vec<_> = step(&format!("UID FETCH {uid} BODY.PEEK[]"), async {
        session
            .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    drain_unsolicited(session);
    Ok(fetches
        .iter()
        .find(|fetch| fetch.uid == Some(uid))
        .and_then(|fetch| fetch.body())
        .map(<[u8]>::to_vec))
}

async fn apply(
    session: &mut ImapSession,
    uid: u32,
    disposition: Disposition,
    processed: &str,
    support: &ServerSupport,
) -> Result<(), ImapError> {
    match disposition {
        Disposition::Leave => Ok(()),
        Disposition::Mark(keyword) => {
            let flags = format!("+FLAGS.SILENT ({})", keyword.as_str());
            let stored = step(&format!("UID STORE {uid} {flags}"), async {
                session
                    .uid_store(uid.to_string(), &flags)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await;
            drain_unsolicited(session);
            if let Err(e) = stored {
                // A server that allows no keywords: the message is read
                // again next poll, and still never moved or deleted.
                tracing::warn!("could not mark message {uid} in the bounce mailbox: {e}");
            }
            Ok(())
        }
        Disposition::MoveToProcessed => move_message(session, uid, processed, support).await,
    }
}

/// UID MOVE where the server has it; otherwise COPY, then \Deleted and an
/// expunge of just this UID. Without UIDPLUS the copy stays flagged
/// \Deleted (the search skips it) rather than run a bare EXPUNGE that would
/// also remove what a person had flagged.
async fn move_message(
    session: &mut ImapSession,
    uid: u32,
    processed: &str,
    support: &ServerSupport,
) -> Result<(), ImapError> {
    let uid_set = uid.to_string();
    if support.moves {
        step(
            &format!("UID MOVE {uid}"),
            session.uid_mv(&uid_set, processed),
        )
        .await?;
        drain_unsolicited(session);
        return Ok(());
    }
    step(
        &format!("UID COPY {uid}"),
        session.uid_copy(&uid_set, processed),
    )
    .await?;
    step(&format!("UID STORE {uid} +FLAGS (\\Deleted)"), async {
        session
            .uid_store(&uid_set, "+FLAGS.SILENT (\\Deleted)")
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    if support.uid_expunge {
        step(&format!("UID EXPUNGE {uid}"), async {
            session
                .uid_expunge(&uid_set)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
    }
    drain_unsolicited(session);
    Ok(())
}

/// async-imap queues the server's unsolicited responses (EXISTS, EXPUNGE,
/// FETCH of flags) on a bounded channel; nothing here needs them, and a
/// full channel would stall the session.
fn drain_unsolicited(session: &mut ImapSession) {
    while session.unsolicited_responses.try_recv().is_ok() {}
}

/// Waiting after `failures` polls in a row failed: 5 s, doubling, at most
/// 10 minutes, so a restarted mail server is found again soon and a broken
/// one is not hammered.
pub fn retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(7);
    Duration::from_secs(5 << doublings).min(Duration::from_secs(600))
}

/// The wait before the next poll after one that succeeded: none when it
/// stopped at its batch cap, unless a busy database stopped it, which the
/// rest should not meet again at once.
pub fn wait_after(summary: &PollSummary, poll_interval: Duration) -> Duration {
    if summary.more_waiting && summary.deferred == 0 {
        Duration::ZERO
    } else {
        poll_interval
    }
}

/// Polls every `poll_interval` until `shutdown` resolves (SIGTERM), and
/// after an error reconnects with backoff. Stopping in the middle of a
/// poll is safe: a report recorded but not yet moved is a duplicate next
/// time, and is moved then.
pub async fn run_poller(
    config: ImapConfig,
    recorder: Recorder,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut failures = 0u32;
    tracing::info!(
        "polling the bounce mailbox {:?} on {}:{} every {}s",
        config.mailbox,
        config.host,
        config.port,
        config.poll_interval.as_secs()
    );
    loop {
        let polled = tokio::select! {
            () = &mut shutdown => return,
            polled = poll_once(&config, &recorder) => polled,
        };
        let wait = match polled {
            Ok(summary) => {
                failures = 0;
                if !summary.is_idle() {
                    tracing::info!(?summary, "polled the bounce mailbox");
                }
                wait_after(&summary, config.poll_interval)
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = retry_after(failures);
                tracing::warn!(
                    "polling the bounce mailbox failed ({failures} in a row; next try in {}s): {e}",
                    wait.as_secs()
                );
                wait
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_recorded_report_leaves_the_mailbox() {
        let cases = [
            (
                Verdict::Recorded { duplicate: false },
                Disposition::MoveToProcessed,
            ),
            (
                Verdict::Recorded { duplicate: true },
                Disposition::MoveToProcessed,
            ),
            (Verdict::Unavailable, Disposition::Leave),
            (Verdict::TooLarge, Disposition::Mark(Keyword::TooLarge)),
            (Verdict::Failed, Disposition::Mark(Keyword::Failed)),
            (
                Verdict::NotAFailure(ReportKind::None),
                Disposition::Mark(Keyword::Ignored),
            ),
            (
                Verdict::NotAFailure(ReportKind::AutoReply),
                Disposition::Mark(Keyword::Ignored),
            ),
            (
                Verdict::NotAFailure(ReportKind::Delay),
                Disposition::Mark(Keyword::Ignored),
            ),
        ];
        for (verdict, expected) in cases {
            assert_eq!(disposition(verdict), expected, "{verdict:?}");
        }
    }

    #[test]
    fn only_bounces_and_complaints_are_consumed() {
        assert!(is_consumed(ReportKind::Bounce));
        assert!(is_consumed(ReportKind::Complaint));
        assert!(!is_consumed(ReportKind::AutoReply));
        assert!(!is_consumed(ReportKind::Delay));
        assert!(!is_consumed(ReportKind::None));
    }

    #[test]
    fn backoff_doubles_from_five_seconds_up_to_ten_minutes() {
        let waits: Vec<u64> = (1..=10).map(|n| retry_after(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(retry_after(u32::MAX).as_secs(), 600);
    }

    #[test]
    fn a_full_batch_polls_again_at_once_unless_the_database_was_busy() {
        let minute = Duration::from_secs(60);
        let full = PollSummary {
            recorded: 200,
            more_waiting: true,
            ..PollSummary::default()
        };
        assert_eq!(wait_after(&full, minute), Duration::ZERO);
        let busy = PollSummary {
            deferred: 1,
            ..full.clone()
        };
        assert_eq!(wait_after(&busy, minute), minute);
        assert_eq!(wait_after(&PollSummary::default(), minute), minute);
    }

    #[test]
    fn keywords_are_valid_imap_atoms() {
        for keyword in [Keyword::Ignored, Keyword::TooLarge, Keyword::Failed] {
            let name = keyword.as_str();
            assert!(
                name.starts_with('$')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '$')
            );
        }
    }
}
