//! SpamAssassin's local rules score every example's mail at zero: no rule
//! with points fires. Runs where `spamassassin` is installed; with
//! `HERALD_TEST_SPAMASSASSIN=1` (which `.ci/run` sets) a missing
//! SpamAssassin fails the test instead of skipping it.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::helpers::{example_issues, herald, stderr};

fn spamassassin_available() -> bool {
    let found = Command::new("spamassassin")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found && std::env::var_os("HERALD_TEST_SPAMASSASSIN").is_some() {
        panic!("HERALD_TEST_SPAMASSASSIN is set but spamassassin is not installed");
    }
    found
}

/// The rules that fired with non-zero points, from `spamassassin -t`'s
/// "Content analysis details" table.
fn scoring_rules(report: &str) -> Vec<String> {
    report
        .lines()
        .skip_while(|line| !line.starts_with(" pts rule name"))
        .skip(2)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let points: f64 = words.next()?.parse().ok()?;
            let rule = words.next()?;
            (points != 0.0).then(|| format!("{points} {rule}"))
        })
        .collect()
}

#[test]
fn spamassassin_scores_every_example_at_zero() {
    if !spamassassin_available() {
        eprintln!(
            "skipped: spamassassin is not installed (set HERALD_TEST_SPAMASSASSIN=1 to require it)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for issue in example_issues() {
        let slug = issue.file_stem().unwrap().to_string_lossy().into_owned();
        let output = herald(
            &["preview", issue.to_str().unwrap(), "--out", &slug],
            dir.path(),
        );
        assert!(output.status.success(), "{}", stderr(&output));
        let eml = std::fs::read_dir(dir.path().join(&slug))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|e| e == "eml"))
            .expect("preview writes an .eml");
        let eml = std::fs::read(eml).unwrap();
        let mut child = Command::new("spamassassin")
            .args(["-L", "-t"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&eml).unwrap();
        let output = child.wait_with_output().unwrap();
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            report.contains("Content analysis details"),
            "{slug}: {report}"
        );
        let rules = scoring_rules(&report);
        if !rules.is_empty() {
            failures.push(format!("{slug}: {rules:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_report_parser_reads_points_and_rules() {
    let report = "Content analysis details:   (0.7 points, 5.0 required)\n\n pts rule name              description\n---- ---------------------- --------------------------------------------------\n 0.7 HTML_FONT_LOW_CONTRAST BODY: HTML font color similar or\n                            identical to background\n 0.0 HTML_MESSAGE           BODY: HTML included in message\n-0.1 DKIM_VALID             Message has at least one valid DKIM\n\n";
    assert_eq!(
        scoring_rules(report),
        ["0.7 HTML_FONT_LOW_CONTRAST", "-0.1 DKIM_VALID"]
    );
}
