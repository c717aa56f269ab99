//! The bounce parser against the shared corpus of real reports, and
//! `herald bounces parse` through the real binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use herald::bounce::{parse, FailureClass, ReportKind};
use serde::Deserialize;

use crate::helpers::{herald, repo_path, stderr};

/// The shared corpus beside the repository (`../shared/bounces`), as CI
/// lays it out too.
fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bounces");
    assert!(
        dir.join("expected.json").is_file(),
        "the shared bounce corpus is missing: expected {} (copy shared/ beside the repository)",
        dir.display()
    );
    dir
}

#[derive(Debug, Deserialize)]
struct SisimaiReading {
    recipient: String,
    reason: String,
    soft: i8,
}

// Where herald and Sisimai 4.25 disagree on purpose. bench/bounces_compare.py
// reads these lists too (the `("file.eml", "address", WHY)` lines), so the
// benchmark prints its agreement with and without them.

const INVENTED: &str = "Sisimai invents this address when a complaint names no recipient; \
    herald reports the complaint with an empty address (the returned Message-ID or VERP tag then matches)";
const DSN_OVER_TEXT: &str = "the DSN's Final-Recipient (neko.example.org) and the human-readable \
    notice (neko.example.com) disagree; herald trusts the machine-readable part";
const NOT_A_BOUNCE: &str =
    "a mailing list's \"you are not a member\" reply to a post: no delivery failed";
const DELAYED_IN_MIXED: &str =
    "this recipient's Action is `delayed` in a DSN that reports other failures: \
    the message is still queued for it, so herald does not count it as failed";
const AUTO_REPLY: &str =
    "an RFC 3834 auto-reply (Auto-Submitted: auto-replied) quoting an address: \
    Sisimai reads a failure (\"onhold\"), herald an auto-reply, never a failure";

/// Sisimai's recipients herald does not report as failed: (file, address, why).
const ALLOWED_MISSING: &[(&str, &str, &str)] = &[
    (
        "arf-11.eml",
        "undisclosed-recipient-in-headers@libsisimai.org.invalid",
        INVENTED,
    ),
    (
        "lhost-domino-03.eml",
        "kijitora@neko.example.com",
        DSN_OVER_TEXT,
    ),
    ("lhost-fml-02.eml", "neko-nyaan@example.org", NOT_A_BOUNCE),
    (
        "rfc3464-35.eml",
        "sabatora@cat.example.net",
        DELAYED_IN_MIXED,
    ),
    ("rfc3834-05.eml", "karl@hanz.de", AUTO_REPLY),
];

const USER_UNKNOWN: &str =
    "the server says the mailbox does not exist (user unknown, no such user, \
    does not exist) and nothing says it refused after DATA; Sisimai files it as soft ('filtered', \
    'mailererror', even 'mailboxfull') from per-vendor knowledge. Herald: a mailbox the receiving \
    server says does not exist is a hard bounce";
const DISABLED: &str =
    "a disabled, suspended, inactive or frozen mailbox (X.2.1): Sisimai's 'suspend' \
    is soft; herald calls it hard, as issue 8 asks: a mailbox its provider switched off does not \
    come back for a newsletter, and soft counting would mail it N more times";
const TEMPORARY: &str = "a 4.x.x status is temporary by definition (RFC 3463); Sisimai calls this \
    450 4.1.1 hard from the words";
const SENDER_BLOCKED: &str =
    "the reply is about the sender (\"MailFrom domain is listed in Spamhaus\"); \
    Sisimai reads its 5.1.0 as user unknown. A block on our side says nothing about the subscriber";

/// Where herald gives another hard/soft class than Sisimai on purpose:
/// (file, address, why).
const ALLOWED_CLASS: &[(&str, &str, &str)] = &[
    (
        "lhost-apachejames-01.eml",
        "000000000000@vtext.example.com",
        USER_UNKNOWN,
    ),
    (
        "lhost-mailfoundry-01.eml",
        "kijitora@example.org",
        USER_UNKNOWN,
    ),
    (
        "lhost-messagingserver-03.eml",
        "sabineko@example.org",
        USER_UNKNOWN,
    ),
    (
        "lhost-messagingserver-03.eml",
        "mikeneko@example.org",
        USER_UNKNOWN,
    ),
    (
        "lhost-mxlogic-03.eml",
        "kijitora@example.co.jp",
        USER_UNKNOWN,
    ),
    (
        "lhost-postfix-01.eml",
        "r@p351355.pool.example.ne.jp",
        USER_UNKNOWN,
    ),
    (
        "lhost-postfix-07.eml",
        "kijitora@user.example.or.jp",
        USER_UNKNOWN,
    ),
    (
        "lhost-receivingses-01.eml",
        "userunknown@neko.example.jp",
        USER_UNKNOWN,
    ),
    (
        "lhost-sendmail-48.eml",
        "pseudo-local-part-kijitora-nyaan@sfr.fr",
        USER_UNKNOWN,
    ),
    (
        "lhost-surfcontrol-01.eml",
        "kijitora@example.com",
        USER_UNKNOWN,
    ),
    ("lhost-x1-01.eml", "kijitora@example.co.jp", USER_UNKNOWN),
    ("lhost-x1-03.eml", "kijitora@example.org", USER_UNKNOWN),
    ("lhost-x2-01.eml", "kijitora@example.co.jp", USER_UNKNOWN),
    ("lhost-zoho-03.eml", "shironeko@example.org", USER_UNKNOWN),
    (
        "rfc3464-01.eml",
        "userunknown@bouncehammer.jp",
        USER_UNKNOWN,
    ),
    (
        "rfc3464-35.eml",
        "mikeneko@neko.example.or.jp",
        USER_UNKNOWN,
    ),
    ("rfc3464-42.eml", "jane.doe@some-domain.net", USER_UNKNOWN),
    (
        "rfc3464-57.eml",
        "otsu-sakaba-hunter-neko-nyaaaaaaan@ezweb.ne.jp",
        USER_UNKNOWN,
    ),
    (
        "lhost-amazonses-20.eml",
        "kijitora@google.example.com",
        DISABLED,
    ),
    (
        "lhost-ezweb-03.eml",
        "this-local-part-does-not-exist-on-the-site@ezweb.ne.jp",
        DISABLED,
    ),
    ("lhost-postfix-52.eml", "kijitora@example.co.jp", DISABLED),
    ("rhost-google-01.eml", "shironeko@example.ne.jp", DISABLED),
    (
        "rhost-google-07.eml",
        "kijitora-cat@google.example.com",
        DISABLED,
    ),
    ("rhost-iua-01.eml", "neko@email.example.ua", DISABLED),
    ("lhost-postfix-05.eml", "kijitora@example.org", TEMPORARY),
    ("lhost-postfix-80.eml", "xxxx@xxxx.com", SENDER_BLOCKED),
];

/// Files herald reads as another kind than Sisimai on purpose: (file, why).
const ALLOWED_KIND: &[(&str, &str)] = &[(
    "arf-26.eml",
    "Apple Mail's unsubscribe-by-mail (X-Apple-Unsubscribe: true): Sisimai \
     calls it a vacation reply; it is the subscriber asking never to be \
     mailed again, so herald reads it as a complaint (feedback type \
     \"unsubscribe\"), which stops mail to them.",
)];

#[test]
fn the_parser_agrees_with_sisimai_on_the_shared_corpus() {
    let dir = corpus_dir();
    let expected: BTreeMap<String, Vec<SisimaiReading>> =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).expect("expected.json"))
            .expect("expected.json parses");
    assert!(
        expected.len() >= 300,
        "only {} files in expected.json",
        expected.len()
    );

    let (mut listed, mut found, mut comparable, mut same_class) = (0, 0, 0, 0);
    let mut missing = Vec::new();
    let mut class_differs = Vec::new();
    // Allow-list entries that no longer disagree: the list must stay true.
    let mut stale = Vec::new();
    for (file, readings) in &expected {
        let raw = std::fs::read(dir.join("corpus").join(file)).expect("corpus file");
        let report = parse(&raw);
        if file.starts_with("arf-") {
            assert_eq!(
                report.kind,
                ReportKind::Complaint,
                "{file} is a complaint: {report:#?}"
            );
        }
        if file.starts_with("rfc3834-") {
            assert_eq!(report.kind, ReportKind::AutoReply, "{file}: {report:#?}");
        }
        for reading in readings {
            let address = reading.recipient.to_lowercase();
            if ALLOWED_MISSING
                .iter()
                .any(|(f, a, _)| f == file && *a == address)
            {
                let reported_failed =
                    matches!(report.kind, ReportKind::Bounce | ReportKind::Complaint)
                        && report.recipients.iter().any(|r| r.address == address);
                if reported_failed {
                    stale.push(format!("{file}: {address} is found now"));
                }
                continue;
            }
            listed += 1;
            let expected_kind = match reading.reason.as_str() {
                "feedback" => ReportKind::Complaint,
                "vacation" => ReportKind::AutoReply,
                _ => ReportKind::Bounce,
            };
            let kind_ok = report.kind == expected_kind
                // Sisimai counts a delay notice as a failure ("expired");
                // herald lists the recipient and calls it a delay.
                || (expected_kind == ReportKind::Bounce && report.kind == ReportKind::Delay)
                || ALLOWED_KIND.iter().any(|(f, _)| f == file);
            let Some(ours) = report.recipients.iter().find(|r| r.address == address) else {
                missing.push(format!(
                    "{file}: {address} ({}) not in {report:?}",
                    reading.reason
                ));
                continue;
            };
            if !kind_ok {
                missing.push(format!(
                    "{file}: {address} read as {:?}, not {expected_kind:?}",
                    report.kind
                ));
                continue;
            }
            found += 1;
            if reading.soft == -1 {
                continue;
            }
            comparable += 1;
            let theirs = if reading.soft == 1 {
                FailureClass::Soft
            } else {
                FailureClass::Hard
            };
            let allowed = ALLOWED_CLASS
                .iter()
                .any(|(f, a, _)| f == file && *a == address);
            if allowed && ours.class == theirs {
                stale.push(format!("{file}: {address} has Sisimai's class now"));
            }
            if ours.class == theirs || allowed {
                same_class += 1;
            } else {
                class_differs.push(format!(
                    "{file}: {address} Sisimai {} {theirs:?}, herald {:?} {:?} {:?}",
                    reading.reason, ours.status, ours.class, ours.diagnostic
                ));
            }
        }
    }
    let found_share = found as f64 / listed as f64;
    let class_share = same_class as f64 / comparable as f64;
    eprintln!(
        "found {found}/{listed} ({:.1}%), same class {same_class}/{comparable} ({:.1}%)",
        found_share * 100.0,
        class_share * 100.0
    );
    assert!(
        stale.is_empty(),
        "stale allow-list entries:\n{}",
        stale.join("\n")
    );
    assert!(
        found_share >= 0.95,
        "found {found} of {listed} recipients; missing:\n{}",
        missing.join("\n")
    );
    assert!(
        class_share >= 0.90,
        "same class for {same_class} of {comparable}; different:\n{}",
        class_differs.join("\n")
    );
}

#[test]
fn auto_replies_and_ordinary_mail_are_never_failures() {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("not-bounces"))
        .expect("not-bounces/")
        .map(|e| e.expect("entry").path())
        .collect();
    files.extend(
        std::fs::read_dir(dir.join("corpus"))
            .expect("corpus/")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("rfc3834-"))
            }),
    );
    assert!(files.len() >= 4, "{files:?}");
    for path in files {
        let report = parse(&std::fs::read(&path).expect("file"));
        assert!(
            !matches!(report.kind, ReportKind::Bounce | ReportKind::Complaint),
            "{}: {report:#?}",
            path.display()
        );
    }
}

/// Every real report, cut at 16 places: an answer each time, no panic.
#[test]
fn every_corpus_file_survives_truncation() {
    let dir = corpus_dir().join("corpus");
    for entry in std::fs::read_dir(&dir).expect("corpus/") {
        let raw = std::fs::read(entry.expect("entry").path()).expect("file");
        for sixteenth in 0..16 {
            let report = parse(&raw[..raw.len() * sixteenth / 16]);
            assert!(report
                .recipients
                .iter()
                .all(|r| r.diagnostic.chars().count() <= 500));
        }
    }
}

/// A 50 MB bounce (a DSN returning a huge attachment): the answer comes
/// from the first megabyte, fast, and the binary never holds the file.
#[test]
fn a_fifty_megabyte_report_is_parsed_quickly_in_bounded_memory() {
    let mut raw =
        std::fs::read(repo_path("tests/fixtures/bounces/postfix-dsn.eml")).expect("fixture");
    let end = raw
        .windows(2)
        .rposition(|w| w == b"--")
        .expect("closing boundary");
    raw.truncate(end);
    raw.extend_from_slice(b"--4F2A81C0123.1764324002/mail.herald.example\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n");
    let line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\n";
    while raw.len() < 50 * 1024 * 1024 {
        raw.extend_from_slice(line);
    }

    let started = Instant::now();
    let report = parse(&raw);
    let took = started.elapsed();
    assert_eq!(report.kind, ReportKind::Bounce);
    assert_eq!(report.recipients[0].address, "ghost@example.org");
    assert!(took < Duration::from_secs(5), "50 MB took {took:?}");

    // The binary under a 64 MiB address-space limit (it peaks at about
    // 14 MB of RSS here): reading the whole 50 MB file, let alone parsing
    // it, would not fit.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("huge.eml");
    std::fs::write(&path, &raw).expect("write");
    drop(raw);
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 65536 && exec "$0" bounces parse --json "$1""#)
        .arg(env!("CARGO_BIN_EXE_herald"))
        .arg(&path)
        .output()
        .expect("sh runs");
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(r#""kind": "bounce""#), "{stdout}");
}

#[test]
fn bounces_parse_prints_one_json_line_per_file_and_names_unreadable_ones() {
    let fixtures = repo_path("tests/fixtures/bounces");
    let dsn = fixtures.join("postfix-dsn.eml");
    let vacation = fixtures.join("vacation.eml");
    let missing = fixtures.join("no-such-file.eml");
    let dsn_arg = dsn.to_string_lossy().into_owned();
    let missing_arg = missing.to_string_lossy().into_owned();
    let vacation_arg = vacation.to_string_lossy().into_owned();
    let output = herald(
        &[
            "bounces",
            "parse",
            "--json",
            &dsn_arg,
            &missing_arg,
            &vacation_arg,
        ],
        &fixtures,
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no-such-file.eml"),
        "{}",
        stderr(&output)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(
        lines[0],
        format!(
            r#"{{"file": "{dsn_arg}", "kind": "bounce", "recipients": [{{"address": "ghost@example.org", "status": "5.1.1", "class": "hard", "diagnostic": "550 5.1.1 <ghost@example.org>: Recipient address rejected: User unknown in virtual mailbox table"}}]}}"#
        )
    );
    let second: serde_json::Value = serde_json::from_str(lines[1]).expect("json");
    assert_eq!(second["kind"], "auto-reply");
    assert_eq!(second["recipients"][0]["address"], "liwei@example.cn");

    // Without --json: a table with a header and one row per recipient.
    let output = herald(&["bounces", "parse", &dsn_arg], &fixtures);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.lines().next().is_some_and(|l| l.starts_with("FILE")),
        "{table}"
    );
    assert!(
        table.contains("ghost@example.org") && table.contains("5.1.1") && table.contains("hard"),
        "{table}"
    );
}

/// Found by the bounce fuzz target: a malformed multipart nesting on which
/// mail-parser 0.11 panics. It must read as "not a report", and a pipe
/// delivery of it must not crash `herald bounces process` (exit 101 would
/// make the MTA bounce the bounce).
#[test]
fn a_message_the_mail_parser_panics_on_is_not_a_report() {
    let raw =
        std::fs::read(repo_path("tests/fixtures/bounces/fuzz-parser-panic.eml")).expect("fixture");
    let report = herald::bounce::parse(&raw);
    assert!(report.recipients.is_empty(), "{report:?}");
    let output = herald(
        &[
            "bounces",
            "parse",
            "--json",
            "tests/fixtures/bounces/fuzz-parser-panic.eml",
        ],
        &repo_path("."),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(r#""kind": "none""#),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
