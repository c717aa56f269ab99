//! A throwaway authoritative DNS server (Debian's dnsmasq) on loopback,
//! serving a zone under `test.` that `herald doctor` is pointed at with
//! `[doctor] nameserver`. The tests that use it run only with
//! `HERALD_TEST_DNS=dnsmasq` (`.ci/run` installs `dnsmasq-base`); with the
//! switch on, a missing or broken dnsmasq fails the test.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `Some(reason)` when the DNS tests are switched off.
pub fn skipped() -> Option<String> {
    match std::env::var("HERALD_TEST_DNS") {
        Ok(value) if value == "dnsmasq" => None,
        Ok(value) => Some(format!(
            "HERALD_TEST_DNS={value:?}; only \"dnsmasq\" turns the DNS tests on"
        )),
        Err(_) => Some(
            "HERALD_TEST_DNS is not set; set HERALD_TEST_DNS=dnsmasq (with dnsmasq installed) to run them"
                .into(),
        ),
    }
}

pub enum Record {
    Txt(String, String),
    Mx(String, String),
}

pub struct Dnsmasq {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let path = PathBuf::from(dir).join("dnsmasq");
        if path.exists() {
            return path;
        }
    }
    panic!("HERALD_TEST_DNS=dnsmasq but dnsmasq is not installed (apt-get install dnsmasq-base)");
}

/// A TXT value as dnsmasq's config takes it: quoted strings of at most
/// 255 bytes each (one TXT record made of several strings, as a DNS
/// console publishes a long DKIM key).
fn txt_strings(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect::<Vec<_>>()
        .join(",")
}

impl Dnsmasq {
    pub fn start(records: &[Record]) -> Dnsmasq {
        let binary = binary();
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let mut config = format!(
            "port={port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nno-poll\n\
             auth-zone=test\nauth-server=ns.test\n"
        );
        for record in records {
            match record {
                Record::Txt(name, value) => {
                    config.push_str(&format!("txt-record={name},{}\n", txt_strings(value)))
                }
                Record::Mx(name, host) => config.push_str(&format!("mx-host={name},{host},10\n")),
            }
        }
        let config_path = dir.path().join("dnsmasq.conf");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(binary)
            .arg("--keep-in-foreground")
            .arg(format!("--conf-file={}", config_path.display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dnsmasq starts");
        let mut server = Dnsmasq {
            child,
            port,
            _dir: dir,
        };
        server.wait_until_answering();
        server
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn wait_until_answering(&mut self) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        // A query for TXT ns.test: header, name, type 16, class IN.
        let mut query = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        query.extend_from_slice(b"\x02ns\x04test\x00\x00\x10\x00\x01");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buffer = [0u8; 512];
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!("dnsmasq exited ({status}): {stderr}");
            }
            let _ = socket.send_to(&query, ("127.0.0.1", self.port));
            if socket.recv(&mut buffer).is_ok() {
                return;
            }
        }
        panic!("dnsmasq did not answer on port {} within 10 s", self.port);
    }
}
