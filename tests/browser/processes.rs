//! The real `herald` binary as the browser tests run it: `herald serve` and
//! `herald preview --watch` as processes killed on drop, the CLI to read
//! the database as an operator would, and the file outbox read back.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::driver::DEADLINE;
use crate::helpers::Workspace;

/// A `herald` command for `ws`, with no secret from the caller's
/// environment.
pub fn herald_command(ws: &Workspace) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .arg("--config")
        .arg(ws.config())
        .current_dir(ws.path())
        .env_remove("HERALD_SECRET")
        .env_remove("HERALD_SMTP_PASSWORD")
        .env_remove("HERALD_ADMIN_PASSWORD_HASH")
        .env_remove("HERALD_METRICS_TOKEN");
    command
}

/// Runs `herald ARGS` for `ws` and returns its output once it succeeded.
pub fn herald_ok(ws: &Workspace, args: &[&str]) -> Output {
    let output = herald_command(ws).args(args).output().expect("herald runs");
    assert!(
        output.status.success(),
        "herald {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `herald subscribers list --json`: the address's state, or `None` when
/// the list does not hold it.
pub fn subscriber_state(ws: &Workspace, email: &str) -> Option<String> {
    let output = herald_ok(ws, &["subscribers", "list", "--json"]);
    let list: Vec<Value> = serde_json::from_slice(&output.stdout).expect("the list is JSON");
    list.iter()
        .find(|subscriber| subscriber["email"] == email)
        .map(|subscriber| {
            subscriber["state"]
                .as_str()
                .expect("a state is a string")
                .to_string()
        })
}

/// A running `herald serve`, stopped with SIGTERM (then killed) on drop.
pub struct Serve {
    child: Child,
    pub base: String,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `herald serve` for `ws` on `port` with `environment`, and
    /// waits until `wait_port` (the public port, or the admin one) accepts
    /// connections.
    pub fn start(ws: &Workspace, port: u16, environment: &[(&str, &str)], wait_port: u16) -> Serve {
        let log = ws.path().join("serve.log");
        let mut command = herald_command(ws);
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("the serve log"))
            .stderr(std::fs::File::create(ws.path().join("serve.err")).expect("the serve log"));
        for (name, value) in environment {
            command.env(name, value);
        }
        let child = command.spawn().expect("herald serve starts");
        let mut serve = Serve {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], wait_port));
        let deadline = Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(address).is_err() {
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("herald serve exited ({status}):\n{}", serve.log());
            }
            assert!(
                Instant::now() < deadline,
                "herald serve does not listen on {address}:\n{}",
                serve.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        serve
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What it printed and logged so far, for a failure's message.
    pub fn log(&self) -> String {
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        let err = std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default();
        format!("{out}{err}")
    }
}

/// A running `herald preview --watch`, killed on drop.
pub struct Preview {
    child: Child,
    pub base: String,
}

impl Drop for Preview {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Preview {
    /// Starts the live preview of `issue` on a free port and waits for the
    /// URL it prints.
    pub fn start(ws: &Workspace, issue: &Path) -> Preview {
        let log = ws.path().join("preview.log");
        let mut child = herald_command(ws)
            .args(["preview", "--watch"])
            .arg(issue)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // A file, not a pipe nobody reads: the log never blocks it.
            .stderr(std::fs::File::create(&log).expect("the preview log"))
            .spawn()
            .expect("herald preview starts");
        let stdout = child.stdout.take().expect("a piped stdout");
        let (lines, first_line) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut preview = Preview {
            child,
            base: String::new(),
        };
        let line = first_line.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            panic!(
                "herald preview printed no URL:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let start = line
            .find("http://")
            .unwrap_or_else(|| panic!("no URL in {line:?}"));
        let url = line[start..].split_whitespace().next().unwrap_or_default();
        preview.base = url.trim_end_matches('/').to_string();
        preview
    }
}

/// The file outbox of `ws` (the default `[smtp] url`, `file://outbox`).
pub fn outbox(ws: &Workspace) -> PathBuf {
    ws.path().join("outbox")
}

/// Waits for a mail to `recipient` in `ws`'s outbox carrying a link that
/// starts with `prefix`, and returns the link.
pub fn wait_for_link(ws: &Workspace, recipient: &str, prefix: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(link) = find_link(&outbox(ws), recipient, prefix) {
            return link;
        }
        assert!(
            Instant::now() < deadline,
            "no mail to {recipient} with a link to {prefix} in {} within {DEADLINE:?}",
            outbox(ws).display()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn find_link(folder: &Path, recipient: &str, prefix: &str) -> Option<String> {
    let entries = std::fs::read_dir(folder).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("eml") {
            continue;
        }
        // A file being written is a temporary one, renamed when complete.
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Some(message) = mail_parser::MessageParser::default().parse(&bytes) else {
            continue;
        };
        let to_recipient = message
            .to()
            .and_then(|to| to.first())
            .and_then(|address| address.address())
            == Some(recipient);
        if !to_recipient {
            continue;
        }
        let text = message.body_text(0).unwrap_or_default();
        if let Some(start) = text.find(prefix) {
            let link: String = text[start..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            return Some(link);
        }
    }
    None
}
