use std::path::{Path, PathBuf};
use std::process::Output;

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn example_issues() -> Vec<PathBuf> {
    herald::issue::issue_files(&repo_path("examples/issues")).expect("examples folder")
}

/// Runs the real `herald` binary.
pub fn herald(args: &[&str], cwd: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .current_dir(cwd)
        .env_remove("HERALD_SECRET")
        .env_remove("HERALD_SMTP_PASSWORD")
        .output()
        .expect("herald runs")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A newsletter in a temporary folder: `herald.toml`, `issues/` holding
/// copies of the example issues, and `public/` once built.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    /// The three example issues, with `extra_config` appended to a config
    /// that otherwise keeps every default.
    pub fn with_examples(extra_config: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("issues")).unwrap();
        for path in example_issues() {
            std::fs::copy(
                &path,
                dir.path().join("issues").join(path.file_name().unwrap()),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("herald.toml"), extra_config).unwrap();
        Workspace { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn config(&self) -> PathBuf {
        self.path().join("herald.toml")
    }
    pub fn issues(&self) -> PathBuf {
        self.path().join("issues")
    }
    pub fn out(&self) -> PathBuf {
        self.path().join("public")
    }
    pub fn settings(&self) -> herald::config::Settings {
        herald::config::Settings::load(&self.config(), true).expect("config loads")
    }
    /// The issues as `build` sees them, newest first.
    pub fn load_issues(&self) -> Vec<herald::issue::Issue> {
        herald::issue::load_folder(&self.issues(), &self.settings().site.base_url)
            .unwrap()
            .expect("valid issues")
    }

    /// Runs the real `herald build` against this workspace.
    pub fn build(&self) -> Output {
        herald(
            &["--config", self.config().to_str().unwrap(), "build"],
            self.path(),
        )
    }

    /// Adds issue `number` as `vol-<number>.md`: the second example under a
    /// new title, number and date (a week after issue 3 per number past 3).
    pub fn add_issue(&self, number: u32) -> String {
        let template = std::fs::read_to_string(repo_path("examples/issues/vol-002.md")).unwrap();
        let title = format!("Cloud Native Weekly #{number}: a fresh issue");
        let day = 29 + 7 * (number as i64 - 3);
        let date =
            chrono::NaiveDate::from_ymd_opt(2019, 4, 1).unwrap() + chrono::Duration::days(day - 1);
        let text = template
            .replace(
                "title = \"Cloud Native Weekly #2: Kubernetes 1.14 settles in\"",
                &format!("title = \"{title}\""),
            )
            .replace("number = 2", &format!("number = {number}"))
            .replace("date = 2019-04-22", &format!("date = {date}"));
        assert!(text.contains(&title) && text.contains(&format!("number = {number}")));
        std::fs::write(self.issues().join(format!("vol-{number:03}.md")), text).unwrap();
        title
    }
}

/// Every file under `dir`, relative path to bytes.
pub fn read_tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    files
}

/// HTML-escapes as the templates should, to find untrusted text in a page.
pub fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Starts the real `herald serve` of `ws` on a free port with
/// `environment` (and no webhook secret from the caller's); returns the
/// child and its address once it listens (or exited).
pub fn start_serve(
    ws: &Workspace,
    environment: &[(&str, &str)],
) -> (std::process::Child, std::net::SocketAddr) {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .args([
            "--config",
            ws.config().to_str().unwrap(),
            "serve",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("HERALD_MAILGUN_SIGNING_KEY")
        .env_remove("HERALD_SENDGRID_VERIFICATION_KEY")
        .env_remove("HERALD_POSTMARK_WEBHOOK_PASSWORD")
        .env_remove("HERALD_WEBHOOK_SECRET")
        .env_remove("HERALD_ADMIN_PASSWORD_HASH")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (name, value) in environment {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let address: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..200 {
        if std::net::TcpStream::connect(address).is_ok() || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (child, address)
}

/// The states a queue has rows in, by name in alphabetical order, as the
/// tests compare them: `[("deferred", 1), ("sent", 2)]`.
pub fn counts_by_name(counts: &herald::store::deliveries::DeliveryCounts) -> Vec<(String, i64)> {
    let mut named: Vec<(String, i64)> = herald::store::deliveries::DeliveryState::ALL
        .into_iter()
        .map(|state| (state.as_str().to_string(), counts.get(state)))
        .filter(|(_, n)| *n > 0)
        .collect();
    named.sort();
    named
}
