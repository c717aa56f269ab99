//! `herald check`: the examples pass, every broken fixture fails where and
//! how it should.

use std::path::PathBuf;

use herald::commands::check::check_paths;
use herald::config::Settings;

use crate::helpers::{example_issues, herald, repo_path, stderr};

/// (fixture, expected file, line, column, words the message must contain)
const BROKEN: &[(&str, &str, usize, usize, &str)] = &[
    (
        "no-front-matter.md",
        "no-front-matter.md",
        1,
        1,
        "must start with a `+++`",
    ),
    (
        "unclosed-front-matter.md",
        "unclosed-front-matter.md",
        1,
        1,
        "never closed",
    ),
    (
        "missing-title.md",
        "missing-title.md",
        2,
        1,
        "missing field `title`",
    ),
    (
        "number-is-a-string.md",
        "number-is-a-string.md",
        3,
        10,
        "invalid type: string \"one\", expected a whole number",
    ),
    (
        "negative-number.md",
        "negative-number.md",
        3,
        10,
        "`number` must be a positive whole number, found -3",
    ),
    (
        "date-is-a-string.md",
        "date-is-a-string.md",
        4,
        8,
        "invalid type: string \"April 15\"",
    ),
    (
        "date-with-time.md",
        "date-with-time.md",
        4,
        8,
        "`date` must be a plain date",
    ),
    (
        "unknown-key.md",
        "unknown-key.md",
        5,
        1,
        "unknown field `author`",
    ),
    ("bad-slug.md", "bad-slug.md", 5, 8, "slug \"Vol 1\" must be"),
    ("toml-syntax.md", "toml-syntax.md", 2, 22, "front matter:"),
    (
        "empty-title.md",
        "empty-title.md",
        2,
        9,
        "`title` must not be empty",
    ),
    (
        "item-outside-section.md",
        "item-outside-section.md",
        8,
        1,
        "item \"Orphan\" is outside a section",
    ),
    (
        "empty-section.md",
        "empty-section.md",
        6,
        1,
        "section \"Empty\" is empty",
    ),
    (
        "javascript-item-link.md",
        "javascript-item-link.md",
        8,
        5,
        "link `javascript:alert(1)` is not http(s)",
    ),
    (
        "mailto-item-link.md",
        "mailto-item-link.md",
        8,
        5,
        "item link must be http or https",
    ),
    (
        "ftp-body-link.md",
        "ftp-body-link.md",
        10,
        13,
        "link `ftp://mirror.example.com/x` is not http(s)",
    ),
    (
        "invalid-utf8.md",
        "invalid-utf8.md",
        10,
        8,
        "not valid UTF-8",
    ),
    (
        "level-one-heading.md",
        "level-one-heading.md",
        6,
        1,
        "`#` headings are not used",
    ),
    (
        "reserved-marker.md",
        "reserved-marker.md",
        10,
        7,
        "`%%herald:` is reserved",
    ),
    (
        "control-character-heading.md",
        "control-character-heading.md",
        8,
        8,
        "control character U+0008 is not allowed",
    ),
    (
        // Found by the issue fuzz target: a TOML escape hid the control
        // character from the check of the raw text, and the email's MJML
        // would not parse.
        "escaped-control-title.md",
        "escaped-control-title.md",
        2,
        9,
        "`title` holds control character U+001B",
    ),
    (
        "deep-list.md",
        "deep-list.md",
        10,
        33,
        "nest more than 32 levels deep",
    ),
    (
        "duplicate-number",
        "b.md",
        3,
        1,
        "issue number 7 is already used by",
    ),
    (
        "duplicate-slug",
        "b.md",
        5,
        1,
        "slug \"same\" is already used by",
    ),
];

fn fixture(name: &str) -> PathBuf {
    repo_path("tests/fixtures/broken").join(name)
}

#[test]
fn every_broken_fixture_is_rejected_where_and_how_expected() {
    let settings = Settings::default();
    let mut failures = Vec::new();
    for &(name, file, line, column, words) in BROKEN {
        let (_, diagnostics) = check_paths(&settings, &[fixture(name)]).expect("check runs");
        let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
        let found = errors.iter().any(|d| {
            d.path.file_name().unwrap() == file
                && d.line == line
                && d.column == column
                && d.message.contains(words)
        });
        if !found {
            let got: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
            failures.push(format!(
                "{name}: expected {file}:{line}:{column}: {words}\n  got: {got:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_examples_pass_check() {
    let settings = Settings::default();
    let (count, diagnostics) = check_paths(&settings, &example_issues()).expect("check runs");
    assert_eq!(count, example_issues().len());
    assert!(count >= 3);
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_cli_prints_file_line_column_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let output = herald(
        &["check", fixture("negative-number.md").to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(
            "negative-number.md:3:10: error: `number` must be a positive whole number, found -3"
        ),
        "{err}"
    );
    // The offending text is shown under the message.
    assert!(err.contains("| number = -3"), "{err}");
}

#[test]
fn warnings_print_but_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let issue = dir.path().join("warn.md");
    std::fs::write(
        &issue,
        "+++\ntitle = \"T\"\nnumber = 1\ndate = 2019-04-15\n+++\n## S\n\n### [No body](https://example.com/)\n",
    )
    .unwrap();
    let output = herald(&["check", "warn.md"], dir.path());
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warn.md:8:1: warning: item \"No body\" has no body"),
        "{err}"
    );
}

#[test]
fn check_with_no_argument_reads_the_configured_issues_folder() {
    let dir = tempfile::tempdir().unwrap();
    let output = herald(&["init", "."], dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let output = herald(&["check"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("checked 1 issue file(s): 0 error(s)"));

    // init never overwrites.
    let again = herald(&["init", "."], dir.path());
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already exists"));
}

#[test]
fn a_missing_file_is_a_user_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = herald(&["check", "nope.md"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("nope.md: no such file or folder"));
    let usage = herald(&["check", "--no-such-flag"], dir.path());
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn an_oversized_issue_is_refused_without_rendering() {
    let dir = tempfile::tempdir().unwrap();
    let issue = dir.path().join("huge.md");
    let row = "| a | b | c | d |\n";
    let mut text = String::from(
        "+++\ntitle = \"T\"\nnumber = 1\ndate = 2019-04-15\n+++\n## S\n\n### I\n\n| a | b | c | d |\n|---|---|---|---|\n",
    );
    while text.len() <= 2 * 1024 * 1024 {
        text.push_str(row);
    }
    std::fs::write(&issue, &text).unwrap();
    let output = herald(&["preview", "huge.md"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("huge.md:1:1: error: the file is") && err.contains("at most 1024 KiB"),
        "{err}"
    );
}

#[test]
fn preview_reports_a_deep_list_instead_of_overflowing_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    let output = herald(
        &["preview", fixture("deep-list.md").to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("nest more than 32 levels deep"));
}

#[test]
fn a_diagnostic_quotes_at_most_a_window_of_a_huge_line() {
    let dir = tempfile::tempdir().unwrap();
    let issue = dir.path().join("long.md");
    let line = format!("title = \"{}\u{8}\"", "x".repeat(1_000_000));
    std::fs::write(
        &issue,
        format!("+++\n{line}\nnumber = 1\ndate = 2019-04-15\n+++\n"),
    )
    .unwrap();
    let output = herald(&["check", "long.md"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("U+0008"), "{}", &err[..err.len().min(500)]);
    assert!(err.len() < 2_000, "stderr is {} bytes", err.len());
}
