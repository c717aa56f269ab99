//! A throwaway Dovecot (Debian's `dovecot-imapd`) on loopback: its own
//! config, passwd-file user, Maildir and TLS certificate under a temporary
//! folder. The tests run only with `HERALD_TEST_IMAP=dovecot`
//! (`tests/setup/dovecot.sh` installs it); with the switch on, a missing or
//! broken Dovecot fails the test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "bounces";
pub const PASSWORD: &str = "imap-test-password";

/// `Some(reason)` when the Dovecot tests are switched off.
pub fn skipped() -> Option<String> {
    match std::env::var("HERALD_TEST_IMAP") {
        Ok(value) if value == "dovecot" => None,
        Ok(value) => Some(format!(
            "HERALD_TEST_IMAP={value:?}; only \"dovecot\" turns the IMAP tests on"
        )),
        Err(_) => Some(
            "HERALD_TEST_IMAP is not set; set HERALD_TEST_IMAP=dovecot (after tests/setup/dovecot.sh) to run them"
                .into(),
        ),
    }
}

pub struct Dovecot {
    child: Child,
    pub dir: tempfile::TempDir,
    /// Implicit TLS.
    pub imaps_port: u16,
    /// STARTTLS (required before LOGIN: `ssl = required`).
    pub imap_port: u16,
}

impl Dovecot {
    /// Starts Dovecot and waits until both ports answer; panics with the
    /// reason (and Dovecot's log) when it cannot.
    pub fn start() -> Dovecot {
        Dovecot::start_with("")
    }

    /// With `extra` appended to the config (e.g. a smaller
    /// `imap_capability`).
    pub fn start_with(extra: &str) -> Dovecot {
        let binary = which("dovecot").unwrap_or_else(|| {
            panic!(
                "HERALD_TEST_IMAP=dovecot but dovecot is not installed: run tests/setup/dovecot.sh"
            )
        });
        let dir = tempfile::tempdir().expect("temp dir");
        // Dovecot's login and mail processes run as other users and must
        // reach the sockets and the Maildir under this folder.
        set_mode(dir.path(), 0o755);
        make_certificates(dir.path());
        let identity = Identity::current();
        let mail = dir.path().join("mail");
        std::fs::create_dir_all(&mail).unwrap();
        identity.own(&mail);
        std::fs::write(
            dir.path().join("passwd"),
            format!("{USER}:{{PLAIN}}{PASSWORD}\n"),
        )
        .unwrap();
        let (imap_port, imaps_port) = (free_port(), free_port());
        let config = dir.path().join("dovecot.conf");
        std::fs::write(
            &config,
            config_text(dir.path(), &identity, imap_port, imaps_port) + extra,
        )
        .unwrap();
        let child = Command::new(binary)
            .arg("-F")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dovecot starts");
        let mut dovecot = Dovecot {
            child,
            dir,
            imaps_port,
            imap_port,
        };
        dovecot.wait_until_listening();
        dovecot
    }

    /// The CA that signed the server's certificate (`imap_ca_file`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!(
                    "dovecot exited ({status}) before listening:\n{stderr}\n{}",
                    self.log()
                );
            }
            let up = |port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if up(self.imaps_port) && up(self.imap_port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dovecot did not listen within 30s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its login and mail processes too.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Who Dovecot's processes run as. As root: Debian's `dovenull` and
/// `dovecot` users, and mail stored as `nobody` (Dovecot refuses uid 0 for
/// mail). Otherwise: everything as the current user.
struct Identity {
    login_user: String,
    internal_user: String,
    mail_uid: String,
    mail_gid: String,
}

impl Identity {
    fn current() -> Identity {
        let id = |flag: &str| {
            let output = Command::new("id").arg(flag).output().expect("id runs");
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        };
        if id("-u") == "0" {
            Identity {
                login_user: "dovenull".into(),
                internal_user: "dovecot".into(),
                mail_uid: "65534".into(),
                mail_gid: "65534".into(),
            }
        } else {
            let user = id("-un");
            Identity {
                login_user: user.clone(),
                internal_user: user,
                mail_uid: id("-u"),
                mail_gid: id("-g"),
            }
        }
    }

    fn own(&self, path: &Path) {
        let status = Command::new("chown")
            .arg(format!("{}:{}", self.mail_uid, self.mail_gid))
            .arg(path)
            .status()
            .expect("chown runs");
        assert!(status.success(), "chown {}", path.display());
    }
}

fn config_text(dir: &Path, identity: &Identity, imap_port: u16, imaps_port: u16) -> String {
    let d = dir.display();
    format!(
        r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{d}/server.pem
ssl_key = <{d}/server.key
disable_plaintext_auth = yes
auth_mechanisms = plain
mail_location = maildir:{d}/mail/%u
default_login_user = {login}
default_internal_user = {internal}
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%u
}}
namespace inbox {{
  inbox = yes
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
"#,
        login = identity.login_user,
        internal = identity.internal_user,
        uid = identity.mail_uid,
        gid = identity.mail_gid,
    )
}

/// A private CA and a server certificate for 127.0.0.1 and localhost,
/// made with the openssl CLI. A CA and a leaf, not one self-signed leaf:
/// rustls, like browsers, refuses a CA certificate as a server's.
fn make_certificates(dir: &Path) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Herald test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("the openssl CLI is needed to make the test certificate: {e}")
            });
        assert!(
            output.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
