//! A real Chromium, driven over WebDriver: Debian's `chromedriver` spawned
//! on a free port for each test, Chromium headless in a fresh profile, both
//! killed (the whole process group) when the [`Browser`] is dropped.
//!
//! Every wait here is explicit and bounded: a test waits for the element,
//! text or value it needs, never for a fixed time, and a wait that runs out
//! fails with what it waited for and what the page showed instead.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// The switch: unset, every browser test is skipped (and says so); set to
/// `chromium`, a missing or broken Chromium or chromedriver fails them.
pub const SWITCH: &str = "HERALD_TEST_BROWSER";

/// Long enough for a debug build and a cold Chromium on a busy two-core
/// machine; a passing run waits a fraction of this.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How often a wait looks again: a WebDriver round trip is about a
/// millisecond on loopback, so this only keeps the busy machine free.
const POLL: Duration = Duration::from_millis(100);

/// The widths every page is checked and photographed at: a phone and a
/// desktop.
pub const WIDTHS: [u32; 2] = [375, 1200];

/// Whether the switch turns browser tests on. Off, it prints that `test`
/// was skipped; on with a value other than `chromium`, it fails, since a
/// typo must not pass as a run.
pub fn browser_tests_on(test: &str) -> bool {
    match std::env::var(SWITCH) {
        Ok(value) if value == "chromium" => true,
        Ok(value) if value.is_empty() => skipped(test),
        Err(_) => skipped(test),
        Ok(value) => panic!("{SWITCH}={value:?}: the only browser tested is \"chromium\""),
    }
}

fn skipped(test: &str) -> bool {
    eprintln!("{test}: skipped, {SWITCH} is not set (set {SWITCH}=chromium to run it)");
    false
}

/// One Chromium session and the chromedriver behind it.
pub struct Browser {
    pub client: Client,
    driver: Child,
    /// Chromium's profile, a new one per test, removed on drop.
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads a process group of its own (see `start`), and
        // Chromium's processes are in it: one signal ends them all, even
        // when the test panicked before closing the session.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session at 1200 px wide.
    /// Panics, naming the cause, when either is missing or will not start.
    pub async fn start() -> Browser {
        let profile = tempfile::tempdir().expect("a temporary folder for the profile");
        let port = free_port();
        let log = profile.path().join("chromedriver.log");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{SWITCH} is on but chromedriver does not start ({e}): apt-get install chromium chromium-driver")
            });
        let mut starting = BrowserStarting {
            driver: Some(driver),
        };
        let url = format!("http://127.0.0.1:{port}");
        wait_for_driver(&url, &log).await;
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(chromium_capabilities(profile.path()))
            .connect(&url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver runs but Chromium does not start: {e}\n{}",
                    read_log(&log)
                )
            });
        let browser = Browser {
            client,
            driver: starting.driver.take().expect("the driver is still ours"),
            _profile: profile,
        };
        browser.set_width(WIDTHS[1]).await;
        browser
    }

    /// Ends the session (Chromium quits); the drop then ends chromedriver.
    pub async fn close(self) {
        let client = self.client.clone();
        if let Err(e) = client.close().await {
            eprintln!("closing the browser session: {e}");
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The element `css` finds, waiting for it to appear.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(DEADLINE)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!(
                "no element {css} within {DEADLINE:?} ({e}) on {}:\n{}",
                self.url().await,
                self.body_text().await
            ),
        }
    }

    /// Clicks the element `css` finds, once it is there.
    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css).await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Types `text` into the field `css` finds.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.wait_for(css).await;
        element
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    /// Runs `script` (a function body, `return`ing its value) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("running {script:?} in the page: {e}"))
    }

    /// The text of the first element `css` finds, or `None` when there is
    /// none yet; read in the page so that a reload between finding and
    /// reading cannot fail the read.
    pub async fn text_of(&self, css: &str) -> Option<String> {
        let script = format!(
            "var e = document.querySelector({}); return e ? e.textContent.trim() : null;",
            json!(css)
        );
        // A page that is loading has no document to ask: that is "not yet".
        match self.client.execute(&script, vec![]).await {
            Ok(Value::String(text)) => Some(text),
            _ => None,
        }
    }

    /// Waits until the element `css` holds `expected` as its whole text.
    pub async fn wait_for_text(&self, css: &str, expected: &str) {
        self.wait_until(&format!("{css} to read {expected:?}"), || async {
            self.text_of(css).await.as_deref() == Some(expected)
        })
        .await
    }

    /// Waits until `condition` holds, polling; on time out, fails naming
    /// `what` and showing the page.
    pub async fn wait_until<F, Fut>(&self, what: &str, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + DEADLINE;
        while !condition().await {
            if Instant::now() > deadline {
                panic!(
                    "waited {DEADLINE:?} for {what}; on {}:\n{}",
                    self.url().await,
                    self.body_text().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The HTTP status of the page now shown (Navigation Timing), to see
    /// what the server answered a form the browser posted.
    pub async fn response_status(&self) -> u64 {
        let status = self
            .eval(
                "var n = performance.getEntriesByType('navigation')[0]; \
                 return n ? n.responseStatus : null;",
            )
            .await;
        status
            .as_u64()
            .unwrap_or_else(|| panic!("the page has no response status: {status}"))
    }

    pub async fn url(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => format!("(no URL: {e})"),
        }
    }

    async fn body_text(&self) -> String {
        self.text_of("body").await.unwrap_or_default()
    }

    /// Resizes the window so that the page's viewport is `width` CSS
    /// pixels wide. Headless Chromium's window has no frame, but it makes
    /// one up in `outerWidth`, so the viewport itself is measured and the
    /// window corrected by what it lacks, if anything.
    pub async fn set_width(&self, width: u32) {
        let height = 900;
        let mut window = width;
        for _ in 0..2 {
            self.client
                .set_window_size(window, height)
                .await
                .unwrap_or_else(|e| panic!("resizing the window to {window} px: {e}"));
            let inner = self.eval("return window.innerWidth;").await;
            let Some(inner) = inner.as_u64().and_then(|w| u32::try_from(w).ok()) else {
                panic!("the page has no innerWidth: {inner}");
            };
            if inner == width {
                return;
            }
            window = (window + width).saturating_sub(inner);
        }
        panic!("the viewport cannot be made {width} px wide");
    }

    /// Photographs the page at each of [`WIDTHS`] into
    /// `target/browser-screenshots/NAME-WIDTH.png` and asserts at each that
    /// nothing overflows sideways. Leaves the window at the last width.
    pub async fn check_widths(&self, name: &str) {
        let folder = screenshot_folder();
        std::fs::create_dir_all(&folder)
            .unwrap_or_else(|e| panic!("creating {}: {e}", folder.display()));
        for width in WIDTHS {
            self.set_width(width).await;
            let png = self
                .client
                .screenshot()
                .await
                .unwrap_or_else(|e| panic!("screenshot of {name} at {width} px: {e}"));
            let path = folder.join(format!("{name}-{width}.png"));
            std::fs::write(&path, png)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            let widths = self
                .eval(&
                    format!(
                    "return [document.documentElement.scrollWidth, window.innerWidth, {OVERFLOWING}];"
                ),
                )
                .await;
            let scroll = widths[0].as_u64();
            let inner = widths[1].as_u64();
            assert!(
                scroll.is_some() && scroll <= inner,
                "{name} overflows at {width} px: scrollWidth {scroll:?} > innerWidth {inner:?}; \
                 sticking out: {}; see {}",
                widths[2],
                path.display()
            );
        }
    }
}

/// A script expression naming (up to five of) the elements that make a page
/// wider than its window, for a failure's message: those whose box sticks
/// out, and those whose content (a long word, a wide table) spills out of
/// them visibly.
const OVERFLOWING: &str = "Array.from(document.querySelectorAll('body *')).filter(function (e) { \
    var box = e.getBoundingClientRect(); \
    var spills = e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === 'visible'; \
    return box.right > window.innerWidth + 0.5 || spills; \
  }).slice(0, 5).map(function (e) { \
    return e.tagName + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : ''); \
  })";

/// The chromedriver child while the session starts: killed if starting
/// fails, so that a failed test leaves no driver behind.
struct BrowserStarting {
    driver: Option<Child>,
}

impl Drop for BrowserStarting {
    fn drop(&mut self) {
        if let Some(mut driver) = self.driver.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", driver.id())])
                .status();
            let _ = driver.wait();
        }
    }
}

/// Headless Chromium as this machine runs it: no sandbox (tests run as
/// root), no GPU, and none of the background connections that a closed
/// network refuses, in the test's own profile.
fn chromium_capabilities(profile: &Path) -> fantoccini::wd::Capabilities {
    let options = json!({
        "binary": "/usr/bin/chromium",
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            format!("--user-data-dir={}", profile.join("chromium").display()),
        ],
    });
    let mut capabilities = fantoccini::wd::Capabilities::new();
    capabilities.insert("goog:chromeOptions".to_string(), options);
    capabilities
}

/// Waits until chromedriver answers `/status` as ready.
async fn wait_for_driver(url: &str, log: &Path) {
    let deadline = Instant::now() + DEADLINE;
    let status = format!("{url}/status");
    loop {
        if let Ok(response) = reqwest::get(&status).await {
            if let Ok(body) = response.json::<Value>().await {
                if body["value"]["ready"] == json!(true) {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not answer at {status} within {DEADLINE:?}\n{}",
            read_log(log)
        );
        tokio::time::sleep(POLL).await;
    }
}

fn read_log(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    probe.local_addr().expect("a bound address").port()
}

/// `target/browser-screenshots/`, beside the tests' own temporary folder
/// (so it follows `CARGO_TARGET_DIR`).
pub fn screenshot_folder() -> PathBuf {
    let target_tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    target_tmp
        .parent()
        .unwrap_or(target_tmp)
        .join("browser-screenshots")
}
