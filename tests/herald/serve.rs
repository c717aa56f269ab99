//! `herald serve`: the real router over real HTTP on a loopback port.

use std::io::{Read, Write};
use std::net::SocketAddr;

use herald::commands::build::build_site;
use herald::http::{router, AppState};
use reqwest::header;
use reqwest::StatusCode;

use crate::helpers::{stderr, Workspace};

/// Builds the workspace's site and serves it on 127.0.0.1:0.
async fn serve(ws: &Workspace) -> SocketAddr {
    let settings = ws.settings();
    build_site(&settings, &ws.out()).expect("site builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(AppState::new(settings)))
            .await
            .unwrap()
    });
    address
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn header_of(response: &reqwest::Response, name: header::HeaderName) -> String {
    response
        .headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
        .to_string()
}

/// One request written by hand, for targets an HTTP client would normalise
/// (`/../x`) before sending. Returns the status code and the whole response.
fn raw_get(address: SocketAddr, target: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    (status, response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_served_with_types_validators_and_conditional_requests() {
    let ws = Workspace::with_examples("[server]\ncache_max_age_secs = 120\n");
    let address = serve(&ws).await;
    let url = |path: &str| format!("http://{address}{path}");
    let client = client();

    let health = client.get(url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.unwrap(), "ok");

    for (path, media_type, file) in [
        ("/feed.xml", "application/rss+xml", "feed.xml"),
        ("/atom.xml", "application/atom+xml", "atom.xml"),
        ("/feed.json", "application/feed+json", "feed.json"),
        ("/", "text/html; charset=utf-8", "index.html"),
        ("/index.html", "text/html; charset=utf-8", "index.html"),
        (
            "/issues/vol-001/",
            "text/html; charset=utf-8",
            "issues/vol-001/index.html",
        ),
        ("/style.css", "text/css; charset=utf-8", "style.css"),
    ] {
        let response = client.get(url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            media_type,
            "{path}"
        );
        assert_eq!(
            header_of(&response, header::CACHE_CONTROL),
            "public, max-age=120"
        );
        let etag = header_of(&response, header::ETAG);
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
            "{etag}"
        );
        let modified = httpdate::parse_http_date(&header_of(&response, header::LAST_MODIFIED))
            .expect("Last-Modified is an HTTP date");
        let mtime = std::fs::metadata(ws.out().join(file))
            .unwrap()
            .modified()
            .unwrap();
        assert!(
            mtime.duration_since(modified).unwrap().as_secs() < 1,
            "{path}"
        );
        assert!(
            !response.headers().contains_key(header::LINK),
            "no hub, no Link"
        );
        let body = response.bytes().await.unwrap();
        assert_eq!(
            &body[..],
            std::fs::read(ws.out().join(file)).unwrap(),
            "{path}"
        );
    }

    // A directory without its slash redirects to the canonical URL, where
    // the page's relative links resolve.
    let response = client.get(url("/issues/vol-001")).send().await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(header_of(&response, header::LOCATION), "/issues/vol-001/");

    let first = client.get(url("/feed.xml")).send().await.unwrap();
    let etag = header_of(&first, header::ETAG);
    let last_modified = header_of(&first, header::LAST_MODIFIED);
    let feed_bytes = first.bytes().await.unwrap();

    for (name, value, expected) in [
        ("if-none-match", etag.clone(), StatusCode::NOT_MODIFIED),
        (
            "if-none-match",
            format!("\"nope\", {etag}"),
            StatusCode::NOT_MODIFIED,
        ),
        (
            "if-none-match",
            format!("W/{etag}"),
            StatusCode::NOT_MODIFIED,
        ),
        ("if-none-match", "*".to_string(), StatusCode::NOT_MODIFIED),
        ("if-none-match", "\"nope\"".to_string(), StatusCode::OK),
        (
            "if-modified-since",
            last_modified.clone(),
            StatusCode::NOT_MODIFIED,
        ),
        (
            "if-modified-since",
            httpdate::fmt_http_date(std::time::UNIX_EPOCH),
            StatusCode::OK,
        ),
    ] {
        let response = client
            .get(url("/feed.xml"))
            .header(name, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{name}: {value}");
        if expected == StatusCode::NOT_MODIFIED {
            assert_eq!(header_of(&response, header::ETAG), etag);
            assert!(
                response.bytes().await.unwrap().is_empty(),
                "a 304 has no body"
            );
        }
    }
    // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    let response = client
        .get(url("/feed.xml"))
        .header("if-none-match", "\"nope\"")
        .header("if-modified-since", &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let head = client.head(url("/feed.xml")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header_of(&head, header::ETAG), etag);
    assert_eq!(
        header_of(&head, header::CONTENT_LENGTH),
        feed_bytes.len().to_string()
    );
    assert!(head.bytes().await.unwrap().is_empty());

    let post = client.post(url("/feed.xml")).send().await.unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    let missing = client.get(url("/issues/vol-999/")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // A new issue, built while the server runs: served at once, new ETag.
    let title = ws.add_issue(4);
    build_site(&ws.settings(), &ws.out()).unwrap();
    let response = client
        .get(url("/feed.xml"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_ne!(header_of(&response, header::ETAG), etag);
    assert!(response.text().await.unwrap().contains(&title));
    let page = client.get(url("/issues/vol-004/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_outside_the_output_folder_are_not_found() {
    let ws = Workspace::with_examples("");
    std::fs::write(ws.path().join("secret.txt"), "TOP-SECRET").unwrap();
    let address = serve(&ws).await;
    // Make sure the secret would be reachable by a naive join.
    assert!(ws.out().join("../secret.txt").is_file());

    for target in [
        "/../secret.txt",
        "/issues/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/herald.toml",
        "/..%2fsecret.txt",
        "/issues/..%2F..%2Fsecret.txt",
        "/..%5csecret.txt",
        &format!("/{}", ws.path().join("secret.txt").display()),
        &format!(
            "/{}",
            ws.path()
                .join("secret.txt")
                .display()
                .to_string()
                .replace('/', "%2f")
        ),
    ] {
        let (status, response) = tokio::task::spawn_blocking({
            let target = target.to_string();
            move || raw_get(address, &target)
        })
        .await
        .unwrap();
        assert_eq!(status, 404, "{target}: {response}");
        assert!(!response.contains("TOP-SECRET"), "{target}");
        assert!(!response.contains("[feeds]"), "{target}");
    }
    // The same server still serves what it should.
    let (status, _) = tokio::task::spawn_blocking(move || raw_get(address, "/feed.xml"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    // A directory redirect stays on this site: `//issues` must not become
    // a protocol-relative `Location: //issues/` (another host).
    let (status, response) = tokio::task::spawn_blocking(move || raw_get(address, "//issues"))
        .await
        .unwrap();
    assert_eq!(status, 308, "{response}");
    let location = response
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("location: ")
                .map(str::to_string)
        })
        .expect("a Location header");
    assert_eq!(location.trim(), "/issues/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_carry_a_websub_link_header_when_a_hub_is_configured() {
    // The hub is only named here: build_site itself never pings it.
    let ws = Workspace::with_examples("[feeds]\nwebsub_hub = \"http://127.0.0.1:9/hub\"\n");
    let address = serve(&ws).await;
    let client = client();
    let base = ws.settings().site.base_url.to_string();
    for feed in ["feed.xml", "atom.xml", "feed.json"] {
        let response = client
            .get(format!("http://{address}/{feed}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            header_of(&response, header::LINK),
            format!("<http://127.0.0.1:9/hub>; rel=\"hub\", <{base}{feed}>; rel=\"self\"")
        );
    }
    let page = client
        .get(format!("http://{address}/"))
        .send()
        .await
        .unwrap();
    assert!(!page.headers().contains_key(header::LINK));
}

#[test]
fn the_serve_command_serves_until_sigterm() {
    let ws = Workspace::with_examples("");
    assert!(ws.build().status.success());
    let (child, address) = crate::helpers::start_serve(&ws, &[]);
    let port = address.port();
    let (status, response) = raw_get(address, "/healthz");
    assert_eq!(status, 200);
    assert!(response.ends_with("ok"));
    let (status, response) = raw_get(address, "/feed.xml");
    assert_eq!(status, 200);
    assert!(response.contains("content-type: application/rss+xml"));

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("on http://127.0.0.1:{port}/")),
        "{stdout}"
    );
    assert!(stdout.contains("stopped"), "{stdout}");
}

/// The real `herald serve` wires the subscriber routes and the confirmation
/// mail worker: a sign-up over HTTP ends as a mail at the SMTP server.
#[test]
fn the_serve_command_takes_sign_ups_and_mails_the_confirmation() {
    let smtp = crate::smtp_server::SmtpServer::start();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let ws = Workspace::with_examples(&format!(
        "[site]\nbase_url = \"http://127.0.0.1:{port}/\"\n[smtp]\nurl = \"{}\"\n",
        smtp.url()
    ));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "--config",
            ws.config().to_str().unwrap(),
            "serve",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(address).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            reqwest::Client::new()
                .post(format!("http://{address}/subscribe"))
                .form(&[("email", "new.reader@example.com"), ("website", "")])
                .send()
                .await
                .unwrap()
                .status()
        });
    assert!(status.is_success(), "{status}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while smtp.messages().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "one confirmation mail");
    assert_eq!(messages[0].to, vec!["new.reader@example.com".to_string()]);
    let body = String::from_utf8_lossy(&messages[0].data).replace("=\r\n", "");
    let prefix = format!("http://127.0.0.1:{port}/confirm/");
    let start = body.find(&prefix).expect("no confirm link") + prefix.len();
    let token = &body[start..start + 43];
    // The database (and its WAL) never holds the link, only its hash.
    assert!(
        ws.path().join("herald.db").is_file(),
        "the list lives in herald.db"
    );
    for file in ["herald.db", "herald.db-wal"] {
        let bytes = std::fs::read(ws.path().join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "{file} holds a usable confirmation token"
        );
    }
}
