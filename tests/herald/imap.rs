//! The bounce mailbox over IMAP, against a real Dovecot on loopback
//! (`HERALD_TEST_IMAP=dovecot`), and the refusal to log in without TLS
//! against a fake server that offers none.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::TryStreamExt;
use herald::bounce::imap::{
    connect, poll_once, ImapConfig, ImapSession, PollSummary, MAX_MESSAGE_BYTES,
};
use herald::bounce::Recorder;
use herald::config::Secret;
use herald::store::Store;

use crate::dovecot::{self, Dovecot, PASSWORD, USER};
use crate::helpers::{herald, stderr, Workspace};

/// The real Postfix bounce for kijitora@2jo.example.jp (5.1.1).
const BOUNCED: &str = "kijitora@2jo.example.jp";

fn shared_bounces() -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bounces");
    assert!(
        dir.join("corpus").is_dir(),
        "{} is missing: the IMAP test delivers real bounces from it",
        dir.display()
    );
    dir
}

fn corpus_message(relative: &str) -> Vec<u8> {
    let path = shared_bounces().join(relative);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    crlf(&text)
}

/// IMAP APPEND takes CRLF lines; the corpus is stored with LF.
fn crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 40);
    for (i, &byte) in text.iter().enumerate() {
        if byte == b'\n' && (i == 0 || text[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(byte);
    }
    out
}

struct Mailbox {
    _dovecot: Dovecot,
    workspace: Workspace,
    config: ImapConfig,
    recorder: Recorder,
    store: Store,
}

impl Mailbox {
    async fn start(url_for: impl Fn(&Dovecot) -> String) -> Mailbox {
        Mailbox::start_on(Dovecot::start(), url_for).await
    }

    async fn start_on(dovecot: Dovecot, url_for: impl Fn(&Dovecot) -> String) -> Mailbox {
        let workspace = Workspace::with_examples(&format!(
            "[bounces]\nimap_url = \"{}\"\nimap_ca_file = \"{}\"\nimap_processed_folder = \"Herald/Processed\"\n",
            url_for(&dovecot),
            dovecot.ca_file().display()
        ));
        for address in [BOUNCED, "kijitora@example.net", "neko@example.com"] {
            let added = herald(
                &["subscribers", "add", address, "--confirmed"],
                workspace.path(),
            );
            assert!(added.status.success(), "{}", stderr(&added));
        }
        let mut settings = workspace.settings();
        settings.imap_password = Some(Secret::new(PASSWORD));
        let config = ImapConfig::from_settings(&settings)
            .expect("valid IMAP settings")
            .expect("imap_url is set");
        let store = crate::send::open_store(&settings).await;
        let recorder = Recorder::new(store.clone(), Arc::new(settings));
        Mailbox {
            _dovecot: dovecot,
            workspace,
            config,
            recorder,
            store,
        }
    }

    async fn session(&self) -> ImapSession {
        connect(&self.config).await.expect("logs in to dovecot")
    }

    async fn deliver(&self, message: &[u8]) {
        self.deliver_flagged(message, None).await;
    }

    async fn deliver_flagged(&self, message: &[u8], flags: Option<&str>) {
        let mut session = self.session().await;
        session
            .append("INBOX", flags, None, message)
            .await
            .expect("APPEND to INBOX");
        session.logout().await.unwrap();
    }

    async fn poll(&self) -> PollSummary {
        poll_once(&self.config, &self.recorder)
            .await
            .expect("a poll succeeds")
    }

    /// `(channel, kind)` of each stored report, oldest first.
    fn reports(&self) -> Vec<(String, String)> {
        let listed = herald(&["bounces", "list", "--json"], self.workspace.path());
        assert!(listed.status.success(), "{}", stderr(&listed));
        let mut reports: Vec<(String, String)> = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .map(|line| {
                let report: serde_json::Value = serde_json::from_str(line).unwrap();
                (
                    report["channel"].as_str().unwrap_or_default().to_string(),
                    report["kind"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        reports.reverse();
        reports
    }

    fn state_of(&self, address: &str) -> String {
        let listed = herald(&["subscribers", "list", "--json"], self.workspace.path());
        assert!(listed.status.success(), "{}", stderr(&listed));
        let list: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
        list.iter()
            .find(|s| s["email"] == address)
            .and_then(|s| s["state"].as_str())
            .unwrap_or_else(|| panic!("{address} is not on the list"))
            .to_string()
    }
}

/// Each message in a folder: its Subject and flags.
async fn folder_contents(session: &mut ImapSession, folder: &str) -> Vec<(String, Vec<String>)> {
    session
        .select(folder)
        .await
        .unwrap_or_else(|e| panic!("SELECT {folder}: {e}"));
    let fetches: Vec<_> = session
        .fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap_or_default();
    let mut contents: Vec<_> = fetches
        .iter()
        .map(|fetch| {
            let header = String::from_utf8_lossy(fetch.header().unwrap_or_default());
            let subject = header
                .trim()
                .trim_start_matches("Subject:")
                .trim()
                .to_string();
            let flags = fetch.flags().map(|flag| format!("{flag:?}")).collect();
            (subject, flags)
        })
        .collect();
    contents.sort();
    while session.unsolicited_responses.try_recv().is_ok() {}
    contents
}

fn has_flag(flags: &[String], needle: &str) -> bool {
    flags.iter().any(|flag| flag.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounce_is_recorded_and_moved_while_other_mail_stays() {
    if let Some(reason) = dovecot::skipped() {
        eprintln!("skipped: {reason}");
        return;
    }
    let mailbox =
        Mailbox::start(|d| format!("imaps://{USER}@127.0.0.1:{}/INBOX", d.imaps_port)).await;
    let bounce = corpus_message("corpus/lhost-postfix-14.eml");
    mailbox.deliver(&bounce).await;
    mailbox
        .deliver(&corpus_message("corpus/rfc3834-01.eml"))
        .await;
    mailbox
        .deliver(&corpus_message("not-bounces/is-not-bounce-01.eml"))
        .await;

    let summary = mailbox.poll().await;
    assert_eq!(
        (
            summary.recorded,
            summary.ignored,
            summary.failed,
            summary.deferred
        ),
        (1, 2, 0, 0),
        "{summary:?}"
    );
    assert_eq!(mailbox.state_of(BOUNCED), "bounced");
    assert_eq!(
        mailbox.state_of("kijitora@example.net"),
        "active",
        "a vacation reply changes nothing"
    );
    let imap = |kind: &str| ("imap".to_string(), kind.to_string());
    assert_eq!(
        mailbox.reports(),
        [imap("bounce"), imap("auto-reply"), imap("none")],
        "every message is kept as a report, as the pipe keeps them"
    );

    let mut session = mailbox.session().await;
    let inbox = folder_contents(&mut session, "INBOX").await;
    assert_eq!(
        inbox.len(),
        2,
        "the auto-reply and the ordinary mail stay: {inbox:?}"
    );
    assert_eq!(inbox[0].0, "=?UTF-8?B?44Gr44KD44KT44GT?=");
    assert_eq!(inbox[1].0, "Away until May 5");
    for (subject, flags) in &inbox {
        assert!(!has_flag(flags, "Deleted"), "{subject}: {flags:?}");
        assert!(
            !has_flag(flags, "Seen"),
            "{subject} still reads as new: {flags:?}"
        );
        assert!(has_flag(flags, "$HeraldIgnored"), "{subject}: {flags:?}");
    }
    // Dovecot's Maildir separates levels with '.', the setting with '/'.
    let processed = folder_contents(&mut session, "Herald.Processed").await;
    assert_eq!(processed.len(), 1, "{processed:?}");
    assert_eq!(processed[0].0, "Undelivered Mail Returned to Sender");
    session.logout().await.unwrap();

    assert_eq!(
        mailbox.poll().await,
        PollSummary::default(),
        "nothing is read twice"
    );

    // The same bounce delivered again (a mail system retried it): recorded
    // once, moved all the same.
    mailbox.deliver(&bounce).await;
    let again = mailbox.poll().await;
    assert_eq!((again.recorded, again.duplicates), (0, 1), "{again:?}");
    let mut session = mailbox.session().await;
    assert_eq!(
        folder_contents(&mut session, "Herald.Processed")
            .await
            .len(),
        2
    );
    assert_eq!(folder_contents(&mut session, "INBOX").await.len(), 2);
    session.logout().await.unwrap();
    mailbox.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_works_and_an_oversized_message_is_marked_not_read() {
    if let Some(reason) = dovecot::skipped() {
        eprintln!("skipped: {reason}");
        return;
    }
    let mailbox = Mailbox::start(|d| format!("imap://{USER}@localhost:{}/", d.imap_port)).await;
    let mut huge =
        b"From: someone@example.com\r\nTo: bounces@example.com\r\nSubject: huge\r\n\r\n".to_vec();
    let line = [b'x'; 998];
    while huge.len() as u32 <= MAX_MESSAGE_BYTES {
        huge.extend_from_slice(&line);
        huge.extend_from_slice(b"\r\n");
    }
    mailbox.deliver(&huge).await;
    mailbox
        .deliver(&corpus_message("corpus/lhost-postfix-14.eml"))
        .await;

    let summary = mailbox.poll().await;
    assert_eq!((summary.too_large, summary.recorded), (1, 1), "{summary:?}");
    assert_eq!(mailbox.state_of(BOUNCED), "bounced");
    let mut session = mailbox.session().await;
    let inbox = folder_contents(&mut session, "INBOX").await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(inbox[0].0, "huge");
    assert!(has_flag(&inbox[0].1, "$HeraldTooLarge"), "{inbox:?}");
    assert!(!has_flag(&inbox[0].1, "Deleted"), "{inbox:?}");
    session.logout().await.unwrap();
    mailbox.store.close().await;
}

/// A server on `imap://` that does not do STARTTLS must never see LOGIN:
/// the password would cross the network in clear text.
#[tokio::test]
async fn no_login_without_tls() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        write
            .write_all(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake ready\r\n")
            .await
            .unwrap();
        let mut lines = BufReader::new(read).lines();
        let mut received = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let tag = line.split(' ').next().unwrap_or("*").to_string();
            received.push(line);
            if write
                .write_all(format!("{tag} BAD unknown command\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
        received
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("herald.toml"),
        format!("[bounces]\nimap_url = \"imap://{USER}@127.0.0.1:{port}/INBOX\"\n"),
    )
    .unwrap();
    let mut settings =
        herald::config::Settings::load(&dir.path().join("herald.toml"), true).unwrap();
    settings.imap_password = Some(Secret::new("never-sent-in-clear"));
    let config = ImapConfig::from_settings(&settings).unwrap().unwrap();
    let error = connect(&config)
        .await
        .expect_err("connecting must fail")
        .to_string();
    assert!(error.contains("STARTTLS"), "{error}");
    assert!(!error.contains("never-sent-in-clear"), "{error}");
    let received = server.await.unwrap();
    assert!(
        received
            .iter()
            .all(|line| !line.to_ascii_uppercase().contains("LOGIN")),
        "{received:?}"
    );
    assert!(
        received.iter().any(|line| line.contains("STARTTLS")),
        "{received:?}"
    );
}

#[test]
fn serve_refuses_an_imap_url_without_a_password() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("herald.toml"),
        "[bounces]\nimap_url = \"imaps://bounces@mail.example.com/INBOX\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("HERALD_IMAP_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("HERALD_IMAP_PASSWORD"),
        "{}",
        stderr(&output)
    );
}

/// `herald serve` polls the mailbox on its own, and stops on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_polls_the_mailbox_and_stops_on_sigterm() {
    if let Some(reason) = dovecot::skipped() {
        eprintln!("skipped: {reason}");
        return;
    }
    let mailbox =
        Mailbox::start(|d| format!("imaps://{USER}@127.0.0.1:{}/INBOX", d.imaps_port)).await;
    let config = mailbox.workspace.config();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}imap_poll_secs = 1\n")).unwrap();
    mailbox
        .deliver(&corpus_message("corpus/lhost-postfix-14.eml"))
        .await;

    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(mailbox.workspace.path())
        .env("HERALD_IMAP_PASSWORD", PASSWORD)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while mailbox.state_of(BOUNCED) != "bounced" {
        if let Ok(Some(status)) = server.try_wait() {
            let output = server.wait_with_output().unwrap();
            panic!("herald serve exited ({status}): {}", stderr(&output));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "herald serve did not record the bounce within 30s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let terminated = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let stopped_by = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < stopped_by,
            "herald serve did not stop within 15s of SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let output = server.wait_with_output().unwrap();
    assert!(status.success(), "{status}: {}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("stopped"));
    let mut session = mailbox.session().await;
    assert!(folder_contents(&mut session, "INBOX").await.is_empty());
    assert_eq!(
        folder_contents(&mut session, "Herald.Processed")
            .await
            .len(),
        1
    );
    session.logout().await.unwrap();
    mailbox.store.close().await;
}

/// Without MOVE (RFC 6851) a report is copied, flagged \Deleted and
/// expunged by its UID alone: a message a person had flagged \Deleted but
/// not expunged is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_move_only_the_report_is_expunged() {
    if let Some(reason) = dovecot::skipped() {
        eprintln!("skipped: {reason}");
        return;
    }
    // Dovecot's capabilities after login, less MOVE.
    let dovecot = Dovecot::start_with(
        "imap_capability = IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE UIDPLUS NAMESPACE CHILDREN LIST-EXTENDED\n",
    );
    let mailbox = Mailbox::start_on(dovecot, |d| {
        format!("imaps://{USER}@127.0.0.1:{}/", d.imaps_port)
    })
    .await;
    mailbox
        .deliver_flagged(
            &corpus_message("not-bounces/is-not-bounce-01.eml"),
            Some("(\\Deleted)"),
        )
        .await;
    mailbox
        .deliver(&corpus_message("corpus/lhost-postfix-14.eml"))
        .await;
    let mut session = mailbox.session().await;
    let capabilities = session.capabilities().await.unwrap();
    assert!(!capabilities.has_str("MOVE") && capabilities.has_str("UIDPLUS"));
    session.logout().await.unwrap();

    let summary = mailbox.poll().await;
    assert_eq!((summary.recorded, summary.ignored), (1, 0), "{summary:?}");
    assert_eq!(mailbox.state_of(BOUNCED), "bounced");
    let mut session = mailbox.session().await;
    let inbox = folder_contents(&mut session, "INBOX").await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(has_flag(&inbox[0].1, "Deleted"), "{inbox:?}");
    let processed = folder_contents(&mut session, "Herald.Processed").await;
    assert_eq!(processed.len(), 1, "{processed:?}");
    assert_eq!(processed[0].0, "Undelivered Mail Returned to Sender");
    session.logout().await.unwrap();
    mailbox.store.close().await;
}
