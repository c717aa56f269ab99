//! `herald build`: the feeds, parsed back by real feed libraries, and the
//! archive pages.

use std::collections::HashMap;
use std::io::BufReader;
use std::sync::{Arc, Mutex};

use herald::issue::Issue;
use rss::validation::Validate;

use crate::helpers::{escape_html, herald, read_tree, stderr, Workspace};

fn read(ws: &Workspace, relative: &str) -> String {
    std::fs::read_to_string(ws.out().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn parse_rss(ws: &Workspace) -> rss::Channel {
    let bytes = std::fs::read(ws.out().join("feed.xml")).unwrap();
    let channel = rss::Channel::read_from(&bytes[..]).expect("feed.xml parses as RSS");
    channel.validate().expect("feed.xml validates");
    channel
}

fn parse_atom(ws: &Workspace) -> atom_syndication::Feed {
    let file = std::fs::File::open(ws.out().join("atom.xml")).unwrap();
    atom_syndication::Feed::read_from(BufReader::new(file)).expect("atom.xml parses as Atom")
}

fn parse_json_feed(ws: &Workspace) -> serde_json::Value {
    serde_json::from_str(&read(ws, "feed.json")).expect("feed.json is JSON")
}

fn midnight_utc(issue: &Issue) -> chrono::DateTime<chrono::FixedOffset> {
    issue
        .date
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .fixed_offset()
}

/// The issue's content holds every item's title (HTML-escaped, as the markup
/// is HTML) and every item link.
fn assert_holds_issue(content: &str, issue: &Issue, feed: &str) {
    for item in issue.items() {
        assert!(
            content.contains(&escape_html(&item.title)),
            "{feed} {}: item {:?} missing",
            issue.slug,
            item.title
        );
        if let Some(url) = &item.url {
            let href = format!("href=\"{}\"", escape_html(url.as_str()));
            assert!(content.contains(&href), "{feed} {}: {href}", issue.slug);
        }
    }
    for section in &issue.sections {
        assert!(content.contains(&escape_html(&section.title)));
    }
    for author in &issue.authors {
        assert!(content.contains(&escape_html(author)), "{feed}: {author}");
    }
}

#[test]
fn build_writes_feeds_that_parse_back_with_every_issue_newest_first() {
    let ws = Workspace::with_examples("");
    let output = ws.build();
    assert!(output.status.success(), "{}", stderr(&output));
    let settings = ws.settings();
    let issues = ws.load_issues();
    assert_eq!(
        issues.iter().map(|i| i.number).collect::<Vec<_>>(),
        [3, 2, 1]
    );
    let base = settings.site.base_url.as_str();

    // RSS 2.0
    let channel = parse_rss(&ws);
    assert_eq!(channel.title(), settings.site.title);
    assert_eq!(channel.link(), base);
    assert_eq!(
        channel.description(),
        escape_html(&settings.site.description)
    );
    assert_eq!(channel.language(), Some("zh-CN"));
    assert!(channel.generator().unwrap().starts_with("Herald"));
    let self_link = channel.atom_ext().unwrap().links();
    assert!(self_link
        .iter()
        .any(|l| l.rel() == "self" && l.href() == format!("{base}feed.xml")));
    assert_eq!(channel.items().len(), 3);
    for (item, issue) in channel.items().iter().zip(&issues) {
        let permalink = settings.issue_url(issue.slug.as_str()).to_string();
        assert_eq!(item.title(), Some(issue.title.as_str()));
        assert_eq!(item.link(), Some(permalink.as_str()));
        let guid = item.guid().unwrap();
        assert_eq!(guid.value(), permalink);
        assert!(guid.is_permalink());
        let date = chrono::DateTime::parse_from_rfc2822(item.pub_date().unwrap()).unwrap();
        assert_eq!(date, midnight_utc(issue));
        assert_eq!(
            item.description(),
            issue.summary.as_deref().map(escape_html).as_deref()
        );
        assert_holds_issue(item.content().unwrap(), issue, "rss");
    }

    // Atom 1.0
    let feed = parse_atom(&ws);
    assert_eq!(feed.title().as_str(), settings.site.title);
    assert_eq!(feed.updated(), &midnight_utc(&issues[0]));
    assert_eq!(feed.authors()[0].name(), settings.site.author);
    let rels: Vec<(&str, &str)> = feed.links().iter().map(|l| (l.rel(), l.href())).collect();
    assert!(
        rels.contains(&("self", &format!("{base}atom.xml"))),
        "{rels:?}"
    );
    assert!(rels.contains(&("alternate", base)), "{rels:?}");
    assert_eq!(feed.entries().len(), 3);
    for (entry, issue) in feed.entries().iter().zip(&issues) {
        let permalink = settings.issue_url(issue.slug.as_str()).to_string();
        assert_eq!(entry.id(), permalink);
        assert_eq!(entry.title().as_str(), issue.title);
        assert_eq!(entry.published(), Some(&midnight_utc(issue)));
        assert_eq!(entry.updated(), &midnight_utc(issue));
        assert_eq!(entry.links()[0].href(), permalink);
        assert_eq!(
            entry.summary().map(|s| s.as_str()),
            issue.summary.as_deref()
        );
        let content = entry.content().unwrap();
        assert_eq!(content.content_type(), Some("html"));
        assert_holds_issue(content.value().unwrap(), issue, "atom");
    }

    // JSON Feed 1.1
    let json = parse_json_feed(&ws);
    assert_eq!(json["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(json["title"], settings.site.title.as_str());
    assert_eq!(json["home_page_url"], base);
    assert_eq!(json["feed_url"], format!("{base}feed.json"));
    assert!(json.get("hubs").is_none(), "no hub configured");
    let items = json["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for (item, issue) in items.iter().zip(&issues) {
        let permalink = settings.issue_url(issue.slug.as_str()).to_string();
        assert_eq!(item["id"], permalink.as_str());
        assert_eq!(item["url"], permalink.as_str());
        assert_eq!(item["title"], issue.title.as_str());
        assert_eq!(item["summary"].as_str(), issue.summary.as_deref());
        let date =
            chrono::DateTime::parse_from_rfc3339(item["date_published"].as_str().unwrap()).unwrap();
        assert_eq!(date, midnight_utc(issue));
        let authors: Vec<&str> = item["authors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(authors, issue.authors);
        assert_holds_issue(item["content_html"].as_str().unwrap(), issue, "json");
    }
}

#[test]
fn archive_pages_hold_every_issue_escaped_with_feeds_form_and_neighbours() {
    let ws = Workspace::with_examples("[site]\nlanguage = \"en\"\n");
    let output = ws.build();
    assert!(output.status.success(), "{}", stderr(&output));
    let settings = ws.settings();
    let issues = ws.load_issues();

    let index = read(&ws, "index.html");
    assert!(index.contains(&escape_html(&settings.site.title)));
    assert!(index.contains(&escape_html(&settings.site.description)));
    let action = format!("action=\"{}subscribe\"", settings.site.base_url);
    assert!(
        index.contains(&action),
        "subscribe form posts to /subscribe"
    );
    assert!(index.contains("method=\"post\""));
    for field in ["name=\"email\"", "name=\"name\"", "name=\"website\""] {
        assert!(index.contains(field), "form field {field}");
    }
    // Newest first, each with its date and summary.
    let mut last = 0;
    for issue in &issues {
        let at = index
            .find(&escape_html(&issue.title))
            .unwrap_or_else(|| panic!("index lacks {}", issue.slug));
        assert!(at > last, "{} out of order", issue.slug);
        last = at;
        assert!(index.contains(&issue.date.to_string()));
        assert!(index.contains(&escape_html(issue.summary.as_deref().unwrap())));
        assert!(index.contains(&format!("href=\"issues/{}/\"", issue.slug)));
    }

    let css = read(&ws, "style.css");
    assert!(css.contains("@media"), "a mobile media query");
    assert!(
        css.contains("'PingFang SC', 'Hiragino Sans GB', 'Microsoft YaHei', 'Noto Sans CJK SC'")
    );

    for (at, issue) in issues.iter().enumerate() {
        let page = read(&ws, &format!("issues/{}/index.html", issue.slug));
        let slug = issue.slug.as_str();
        assert!(page.contains("<meta name=\"viewport\""), "{slug}");
        assert!(page.contains("href=\"../../style.css\""), "{slug}");
        assert!(page.contains(&format!(
            "<link rel=\"canonical\" href=\"{}\">",
            settings.issue_url(slug)
        )));
        assert!(page.contains(&format!("<h1>{}</h1>", escape_html(&issue.title))));
        assert_holds_issue(&page, issue, "page");
        if let Some(editor) = &issue.editor {
            assert!(page.contains(&escape_html(editor)), "{slug}: editor");
        }
        // No per-recipient data, and no raw untrusted markup.
        assert!(!page.contains("%%herald:") && !page.contains("subscriber@example.com"));
        assert!(
            !page.contains("<escapes>") && !page.contains("<script"),
            "{slug}"
        );
        // Older issue is "previous", newer is "next".
        match issues.get(at + 1) {
            Some(older) => {
                assert!(page.contains(&format!("rel=\"prev\" href=\"../{}/\"", older.slug)))
            }
            None => assert!(!page.contains("rel=\"prev\"")),
        }
        match at.checked_sub(1).map(|newer| &issues[newer]) {
            Some(newer) => {
                assert!(page.contains(&format!("rel=\"next\" href=\"../{}/\"", newer.slug)))
            }
            None => assert!(!page.contains("rel=\"next\"")),
        }
    }

    for page in std::iter::once("index.html".to_string()).chain(
        issues
            .iter()
            .map(|i| format!("issues/{}/index.html", i.slug)),
    ) {
        let html = read(&ws, &page);
        for (media_type, file) in [
            ("application/rss+xml", "feed.xml"),
            ("application/atom+xml", "atom.xml"),
            ("application/feed+json", "feed.json"),
        ] {
            let link = format!(
                "<link rel=\"alternate\" type=\"{media_type}\" title=\"Herald Weekly ({})\" href=\"{}{file}\">",
                match file { "feed.xml" => "RSS", "atom.xml" => "Atom", _ => "JSON Feed" },
                settings.site.base_url
            );
            assert!(html.contains(&link), "{page}: {link}");
        }
    }
}

#[test]
fn rebuilding_changes_nothing_and_a_new_issue_keeps_old_ids() {
    let ws = Workspace::with_examples("");
    assert!(ws.build().status.success());
    let first = read_tree(&ws.out());
    let stamps = |ws: &Workspace| -> HashMap<std::path::PathBuf, (std::time::SystemTime, u64)> {
        read_tree(&ws.out())
            .keys()
            .map(|relative| {
                let meta = std::fs::metadata(ws.out().join(relative)).unwrap();
                use std::os::unix::fs::MetadataExt;
                (relative.clone(), (meta.modified().unwrap(), meta.ino()))
            })
            .collect()
    };
    let first_stamps = stamps(&ws);
    assert_eq!(first.len(), 8, "{:?}", first.keys());

    let output = ws.build();
    assert!(output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("0 file(s) written, 8 unchanged"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(read_tree(&ws.out()), first, "a rebuild changed bytes");
    assert_eq!(stamps(&ws), first_stamps, "a rebuild rewrote files");

    // A second output folder from the same inputs: byte-identical.
    let elsewhere = ws.path().join("elsewhere");
    let output = herald(
        &[
            "--config",
            ws.config().to_str().unwrap(),
            "build",
            "--out",
            elsewhere.to_str().unwrap(),
        ],
        ws.path(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(read_tree(&elsewhere), first);

    let old_rss: Vec<String> = parse_rss(&ws)
        .items()
        .iter()
        .map(|i| i.guid().unwrap().value().to_string())
        .collect();
    let old_atom: Vec<String> = parse_atom(&ws)
        .entries()
        .iter()
        .map(|e| e.id().to_string())
        .collect();

    let title = ws.add_issue(4);
    let output = ws.build();
    assert!(output.status.success(), "{}", stderr(&output));
    let second = read_tree(&ws.out());
    for feed in ["feed.xml", "atom.xml", "feed.json", "index.html"] {
        assert_ne!(
            second[&std::path::PathBuf::from(feed)],
            first[&std::path::PathBuf::from(feed)],
            "{feed} unchanged"
        );
    }
    assert!(second.contains_key(&std::path::PathBuf::from("issues/vol-004/index.html")));
    // Issue 1 has no new neighbour: its page is left as it was.
    let vol_001 = std::path::PathBuf::from("issues/vol-001/index.html");
    assert_eq!(second[&vol_001], first[&vol_001]);
    assert_eq!(stamps(&ws)[&vol_001], first_stamps[&vol_001]);

    let rss = parse_rss(&ws);
    assert_eq!(rss.items()[0].title(), Some(title.as_str()));
    let new_rss: Vec<String> = rss
        .items()
        .iter()
        .map(|i| i.guid().unwrap().value().to_string())
        .collect();
    assert_eq!(new_rss[1..], old_rss[..], "old RSS guids changed");
    let atom = parse_atom(&ws);
    let new_atom: Vec<String> = atom.entries().iter().map(|e| e.id().to_string()).collect();
    assert_eq!(new_atom[1..], old_atom[..], "old Atom ids changed");
    assert_eq!(new_atom[0], ws.settings().issue_url("vol-004").to_string());
    assert_eq!(atom.updated().date_naive().to_string(), "2019-05-06");
    let json = parse_json_feed(&ws);
    assert_eq!(json["items"][0]["title"], title.as_str());
    assert_eq!(json["items"].as_array().unwrap().len(), 4);
}

#[test]
fn feeds_carry_the_newest_max_items_while_the_archive_keeps_all() {
    let ws = Workspace::with_examples("[feeds]\nmax_items = 2\n");
    let output = ws.build();
    assert!(output.status.success(), "{}", stderr(&output));
    let issues = ws.load_issues();
    let newest: Vec<&str> = issues[..2].iter().map(|i| i.title.as_str()).collect();

    let rss: Vec<String> = parse_rss(&ws)
        .items()
        .iter()
        .map(|i| i.title().unwrap().to_string())
        .collect();
    assert_eq!(rss, newest);
    let atom: Vec<String> = parse_atom(&ws)
        .entries()
        .iter()
        .map(|e| e.title().to_string())
        .collect();
    assert_eq!(atom, newest);
    let json = parse_json_feed(&ws);
    let json: Vec<&str> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(json, newest);

    let index = read(&ws, "index.html");
    assert_eq!(index.matches("<li>").count(), 3);
    for issue in &issues {
        assert!(index.contains(&escape_html(&issue.title)));
        assert!(ws
            .out()
            .join(format!("issues/{}/index.html", issue.slug))
            .is_file());
    }
}

#[test]
fn an_invalid_issue_fails_the_build_and_writes_nothing() {
    let ws = Workspace::with_examples("");
    std::fs::copy(
        crate::helpers::repo_path("tests/fixtures/broken/empty-section.md"),
        ws.issues().join("vol-009.md"),
    )
    .unwrap();
    let output = ws.build();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("vol-009.md:"), "{err}");
    assert!(err.contains("error:"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!ws.out().exists(), "output folder created");
}

/// An in-process WebSub hub that records every publish ping.
/// The forms a test hub received.
type Pings = Arc<Mutex<Vec<HashMap<String, String>>>>;

async fn start_hub(status: axum::http::StatusCode) -> (String, Pings) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_hub_on(listener, status)
}

fn start_hub_on(
    listener: tokio::net::TcpListener,
    status: axum::http::StatusCode,
) -> (String, Pings) {
    let pings = Arc::new(Mutex::new(Vec::new()));
    let recorded = pings.clone();
    let hub = axum::Router::new().route(
        "/hub",
        axum::routing::post(
            move |axum::Form(form): axum::Form<HashMap<String, String>>| {
                let recorded = recorded.clone();
                async move {
                    recorded.lock().unwrap().push(form);
                    status
                }
            },
        ),
    );
    let url = format!("http://{}/hub", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hub).await.unwrap() });
    (url, pings)
}

async fn build_async(ws: &Workspace) -> std::process::Output {
    let config = ws.config();
    let dir = ws.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        herald(&["--config", config.to_str().unwrap(), "build"], &dir)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websub_hub_is_linked_and_pinged_only_when_a_feed_changes() {
    let (hub, pings) = start_hub(axum::http::StatusCode::NO_CONTENT).await;
    let ws = Workspace::with_examples(&format!("[feeds]\nwebsub_hub = \"{hub}\"\n"));
    let base = ws.settings().site.base_url.to_string();

    let output = build_async(&ws).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let mut announced: Vec<String> = pings
        .lock()
        .unwrap()
        .iter()
        .map(|form| {
            assert_eq!(form["hub.mode"], "publish");
            form["hub.url"].clone()
        })
        .collect();
    announced.sort();
    assert_eq!(
        announced,
        [
            format!("{base}atom.xml"),
            format!("{base}feed.json"),
            format!("{base}feed.xml")
        ]
    );

    let rss = parse_rss(&ws);
    assert!(rss
        .atom_ext()
        .unwrap()
        .links()
        .iter()
        .any(|l| l.rel() == "hub" && l.href() == hub));
    assert!(parse_atom(&ws)
        .links()
        .iter()
        .any(|l| l.rel() == "hub" && l.href() == hub));
    let json = parse_json_feed(&ws);
    assert_eq!(json["hubs"][0]["type"], "WebSub");
    assert_eq!(json["hubs"][0]["url"], hub.as_str());

    let output = build_async(&ws).await;
    assert!(output.status.success());
    assert_eq!(
        pings.lock().unwrap().len(),
        3,
        "pinged although nothing changed"
    );

    ws.add_issue(4);
    let output = build_async(&ws).await;
    assert!(output.status.success());
    assert_eq!(
        pings.lock().unwrap().len(),
        6,
        "a new issue was not announced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hub_is_a_warning_not_a_failed_build() {
    let (hub, pings) = start_hub(axum::http::StatusCode::INTERNAL_SERVER_ERROR).await;
    let ws = Workspace::with_examples(&format!("[feeds]\nwebsub_hub = \"{hub}\"\n"));
    let output = build_async(&ws).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("warning: WebSub ping"),
        "{}",
        stderr(&output)
    );
    assert!(!pings.lock().unwrap().is_empty());
    assert!(ws.out().join("feed.xml").is_file());

    // Nobody listening at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let ws = Workspace::with_examples(&format!(
        "[feeds]\nwebsub_hub = \"http://127.0.0.1:{port}/hub\"\n"
    ));
    let output = build_async(&ws).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("warning: WebSub ping"),
        "{}",
        stderr(&output)
    );

    // The hub comes back: the next build, though it writes nothing new,
    // announces the feeds the failed ping missed, once.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let (_, pings) = start_hub_on(listener, axum::http::StatusCode::NO_CONTENT);
    let output = build_async(&ws).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout_of(&output).contains("0 file(s) written"),
        "{}",
        stdout_of(&output)
    );
    assert_eq!(
        pings.lock().unwrap().len(),
        3,
        "the three feeds, announced late"
    );
    let output = build_async(&ws).await;
    assert!(output.status.success());
    assert_eq!(pings.lock().unwrap().len(), 3, "and not again");
}

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn rss_text_with_markup_characters_reads_as_text_everywhere() {
    let ws = Workspace::with_examples("");
    std::fs::write(
        ws.issues().join("vol-009.md"),
        "+++\ntitle = \"Tom & Jerry <test> edition\"\nnumber = 9\ndate = 2019-06-01\nsummary = \"Tom & Jerry <test>\"\nauthors = [\"Ann\", \"Bo\"]\n+++\n## S\n\n### [I](https://example.com/)\n\nBody.\n",
    )
    .unwrap();
    let output = ws.build();
    assert!(output.status.success(), "{}", stderr(&output));
    let xml = read(&ws, "feed.xml");
    // The title as the best-practice references, never &amp; or &lt;.
    assert!(
        xml.contains("<title>Tom &#x26; Jerry &#x3C;test&gt; edition</title>"),
        "{xml}"
    );
    let channel = parse_rss(&ws);
    let item = &channel.items()[0];
    assert_eq!(item.title(), Some("Tom & Jerry <test> edition"));
    // The description is HTML whose text is the summary, markup and all.
    assert_eq!(item.description(), Some("Tom &amp; Jerry &lt;test&gt;"));
    let creators = item.dublin_core_ext().unwrap().creators();
    assert_eq!(creators, ["Ann, Bo"]);
}

#[test]
fn the_sign_up_fields_have_visible_labels() {
    let ws = Workspace::with_examples("");
    assert!(ws.build().status.success());
    let index = read(&ws, "index.html");
    for field in ["email", "name"] {
        // A label that holds its words and the field, not only a placeholder.
        let labelled = regex::Regex::new(&format!(
            r#"<label[^>]*>\s*([^<\s][^<]*)<input[^>]*name="{field}""#
        ))
        .unwrap();
        let words = labelled
            .captures(&index)
            .map(|c| c[1].trim().to_string())
            .unwrap_or_else(|| panic!("no visible label for {field}"));
        assert!(!words.is_empty(), "{field}");
    }
}
