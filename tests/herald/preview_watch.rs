//! `herald preview --watch`: the real command as a process, its page over
//! HTTP and its server-sent events, while the test edits the issue, a
//! template and the config under it.
//!
//! No test sleeps for a fixed time: each waits, under a generous deadline
//! (the machine may be busy), for the event the change must cause, then
//! for the page to show the change.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::{herald, Workspace};

/// Long enough for a debug build on a busy two-core machine; a passing run
/// takes well under a second per change.
const DEADLINE: Duration = Duration::from_secs(60);

/// A running `herald preview --watch`, killed when dropped.
struct RunningPreview {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for RunningPreview {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RunningPreview {
    /// Starts the preview of `issue` with `ws`'s config on a free port and
    /// waits until it prints its URL.
    fn start(ws: &Workspace, issue: &Path) -> RunningPreview {
        let log = ws.path().join("preview.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "--config",
                ws.config().to_str().unwrap(),
                "preview",
                "--watch",
            ])
            .arg(issue)
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(ws.path())
            .stdout(Stdio::piped())
            // A file, not a pipe nobody reads: the log never blocks it.
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("herald starts");
        let stdout = child.stdout.take().unwrap();
        let (lines, first_line) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines.send(line);
            }
        });
        let mut preview = RunningPreview {
            child,
            base: String::new(),
            log,
        };
        let line = first_line
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("no URL printed; log:\n{}", preview.log()));
        let start = line.find("http://").unwrap_or_else(|| panic!("{line}"));
        let url = line[start..].split_whitespace().next().unwrap();
        preview.base = url.trim_end_matches('/').to_string();
        preview
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = tokio::time::timeout(DEADLINE, reqwest::get(self.url(path)))
            .await
            .expect("the preview answers in time")
            .unwrap_or_else(|e| panic!("GET {path}: {e}; log:\n{}", self.log()));
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn page(&self) -> String {
        let (status, page) = self.get("/").await;
        assert_eq!(status, 200, "{page}");
        page
    }

    /// Waits for a `render` event, then for the page to satisfy `shows`
    /// (an event may come from a save before the one the test waits for).
    async fn page_after_change(&self, events: &mut Events, shows: impl Fn(&str) -> bool) -> String {
        let waited = tokio::time::timeout(DEADLINE, async {
            loop {
                let generation = events.next_generation().await;
                let page = self.page().await;
                if shows(&page) {
                    assert!(
                        generation_of(&page) >= generation,
                        "the page is older than the event"
                    );
                    return page;
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| panic!("the change never showed; log:\n{}", self.log()))
    }
}

fn generation_of(page: &str) -> u64 {
    let start = page.find("data-generation=\"").expect("a generation") + 17;
    let end = start + page[start..].find('"').unwrap();
    page[start..end].parse().unwrap()
}

/// The preview's event stream, read as a browser's EventSource would.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(preview: &RunningPreview) -> Events {
        let response = reqwest::get(preview.url("/events")).await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert_eq!(content_type, "text/event-stream");
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The generation carried by the next `render` event (keep-alive
    /// comments are skipped).
    async fn next_generation(&mut self) -> u64 {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|line| line.strip_prefix(name))
                        .map(|value| value.trim_start().to_string())
                };
                if field("event:").as_deref() == Some("render") {
                    let data = field("data:").expect("a render event carries data");
                    return data.parse().expect("the data is a generation");
                }
            }
            let chunk = tokio::time::timeout(DEADLINE, self.response.chunk())
                .await
                .expect("an event in time")
                .expect("the stream reads")
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

fn copy_issue(ws: &Workspace) -> (PathBuf, String) {
    let issue = ws.issues().join("vol-002.md");
    let text = std::fs::read_to_string(&issue).unwrap();
    (issue, text)
}

const TITLE: &str = "Cloud Native Weekly #2: Kubernetes 1.14 settles in";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_reloads_the_page_and_an_error_replaces_the_email_until_it_is_fixed() {
    let ws = Workspace::with_examples("");
    let (issue, original) = copy_issue(&ws);
    let preview = RunningPreview::start(&ws, &issue);

    let page = preview.page().await;
    for id in [
        "subject",
        "from",
        "preheader",
        "phone",
        "desktop",
        "text",
        "size",
        "diagnostics",
    ] {
        assert!(page.contains(&format!("id=\"{id}\"")), "no #{id}");
    }
    assert!(page.contains(&format!("<span id=\"subject\">{TITLE}</span>")));
    assert!(page.contains("<span id=\"from\">Herald Weekly</span>"));
    assert!(page.contains("<span id=\"preheader\">Windows nodes go stable"));
    assert!(page.contains("data-errors=\"0\""));
    // The email is in both frames, escaped into their srcdoc.
    assert_eq!(page.matches("srcdoc=\"&lt;!doctype html&gt;").count(), 2);
    assert!(page.contains("<pre id=\"text\">Herald Weekly · #2 · 2019-04-22"));
    assert!(page.contains("new EventSource(\"/events\")"));

    let mut events = Events::open(&preview).await;
    let first = events.next_generation().await;
    assert_eq!(
        first,
        generation_of(&page),
        "the stream says where it is at once"
    );

    // An edit: the event arrives and the page shows the new title.
    let edited = original.replace(TITLE, "Kubernetes 1.14, week two & counting");
    std::fs::write(&issue, &edited).unwrap();
    let page = preview
        .page_after_change(&mut events, |page| {
            page.contains("<span id=\"subject\">Kubernetes 1.14, week two &amp; counting</span>")
        })
        .await;
    assert!(generation_of(&page) > first);
    assert!(page.contains("id=\"phone\""));

    // A `#` heading is an error at its line: the diagnostics replace the
    // email, the server keeps answering.
    let broken_line = edited.lines().count() + 2;
    std::fs::write(&issue, format!("{edited}\n# A level-one heading\n")).unwrap();
    let page = preview
        .page_after_change(&mut events, |page| {
            page.contains("`#` headings are not used")
        })
        .await;
    assert!(page.contains("data-errors=\"1\""), "{page}");
    let issue_name = issue.display().to_string();
    assert!(
        page.contains(&format!("data-line=\"{broken_line}\" data-column=\"1\"")),
        "{page}"
    );
    assert!(page.contains(&format!("{issue_name}:{broken_line}:1")));
    assert!(page.contains("`#` headings are not used"));
    assert!(page.contains("<pre class=\"snippet\"># A level-one heading</pre>"));
    for id in ["phone", "desktop", "text", "subject"] {
        assert!(
            !page.contains(&format!("id=\"{id}\"")),
            "#{id} with an error"
        );
    }
    let (status, _) = preview.get("/email.html").await;
    assert_eq!(status, 503);
    assert_eq!(preview.page().await, page, "the server still answers");

    // Fixed: the email is back.
    std::fs::write(&issue, &edited).unwrap();
    let page = preview
        .page_after_change(&mut events, |page| page.contains("id=\"phone\""))
        .await;
    assert!(page.contains("data-errors=\"0\""));
    assert!(page.contains("week two &amp; counting"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_is_the_html_parts_and_past_102_kilobytes_gmail_clips() {
    let ws = Workspace::with_examples("");
    let (issue, original) = copy_issue(&ws);
    let preview = RunningPreview::start(&ws, &issue);
    let mut events = Events::open(&preview).await;
    events.next_generation().await;

    let size_of = |page: &str| -> (String, usize) {
        let at = page.find("<p id=\"size\"").expect("#size");
        let tag = &page[at..at + page[at..].find('>').unwrap()];
        let class = tag
            .split("class=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let bytes = tag
            .split("data-bytes=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        (class.to_string(), bytes.parse().unwrap())
    };
    let page = preview.page().await;
    let (status, html) = preview.get("/email.html").await;
    assert_eq!(status, 200);
    assert!(html.contains(TITLE));
    let (class, bytes) = size_of(&page);
    assert_eq!((class.as_str(), bytes), ("fits", html.len()));
    assert!(page.contains("of Gmail's 102 KB clipping limit"));

    // About 120 KB of text in one more item.
    let paragraph = "A long paragraph that makes the issue heavy. ".repeat(20);
    let long_item = format!(
        "\n### A very long read\n\n{}",
        vec![paragraph; 130].join("\n\n")
    );
    std::fs::write(&issue, format!("{original}{long_item}\n")).unwrap();
    let page = preview
        .page_after_change(&mut events, |page| page.contains("class=\"clipped\""))
        .await;
    let (status, html) = preview.get("/email.html").await;
    assert_eq!(status, 200);
    let (_, bytes) = size_of(&page);
    assert_eq!(bytes, html.len());
    assert!(bytes > 102 * 1024, "{bytes}");
    assert!(page.contains("Gmail will clip this message"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_or_config_change_renders_again_and_a_broken_config_shows_its_error() {
    let ws = Workspace::with_examples("");
    let (issue, _) = copy_issue(&ws);
    let preview = RunningPreview::start(&ws, &issue);
    let mut events = Events::open(&preview).await;
    events.next_generation().await;

    // A new override in the templates folder next to the config.
    std::fs::create_dir(ws.path().join("templates")).unwrap();
    std::fs::write(
        ws.path().join("templates/email.txt.hbs"),
        "OVERRIDDEN: {{title}}\n",
    )
    .unwrap();
    let page = preview
        .page_after_change(&mut events, |page| {
            page.contains(&format!("<pre id=\"text\">OVERRIDDEN: {TITLE}\n</pre>"))
        })
        .await;
    assert!(page.contains("id=\"phone\""));

    std::fs::write(
        ws.config(),
        "[mail]\nfrom = \"Preview Desk <desk@example.com>\"\n",
    )
    .unwrap();
    preview
        .page_after_change(&mut events, |page| {
            page.contains("<span id=\"from\">Preview Desk</span>")
        })
        .await;

    std::fs::write(ws.config(), "[mail\nfrom = \"x\"\n").unwrap();
    let page = preview
        .page_after_change(&mut events, |page| page.contains("reading config"))
        .await;
    assert!(page.contains("data-errors=\"1\""), "{page}");
    assert!(!page.contains("id=\"phone\""));

    std::fs::write(ws.config(), "").unwrap();
    let page = preview
        .page_after_change(&mut events, |page| page.contains("id=\"phone\""))
        .await;
    assert!(page.contains("<span id=\"from\">Herald Weekly</span>"));
}

#[test]
fn listen_needs_watch_and_the_issue_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let output = herald(
        &["preview", "--listen", "127.0.0.1:0", "missing.md"],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(2), "a usage error");
    let output = herald(&["preview", "--watch", "missing.md"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    assert!(crate::helpers::stderr(&output).contains("missing.md: no such issue file"));
    std::fs::copy(
        crate::helpers::repo_path("examples/issues/vol-002.md"),
        dir.path().join("vol-002.md"),
    )
    .unwrap();
    let output = herald(
        &["preview", "--watch", "--listen", "nonsense", "vol-002.md"],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(crate::helpers::stderr(&output).contains("\"nonsense\" is not an address and port"));
}
