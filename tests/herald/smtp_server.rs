//! A real SMTP server in-process (mailin-embedded) that tests can make
//! misbehave, and a TCP proxy in front of it that cuts connections mid-DATA.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mailin_embedded::response::{self, Response};
use mailin_embedded::{Handler, Server};

#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope sender (MAIL FROM).
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
    pub at: Instant,
}

/// How the server should misbehave.
#[derive(Debug, Default)]
pub struct Faults {
    /// Share of RCPT commands answered `451 4.7.1`.
    pub rcpt_451_rate: f64,
    /// Every RCPT answered `451` (a broken server).
    pub always_451: bool,
    /// Recipients answered `550 5.1.1`, naming the address as Postfix does
    /// (so each reply's text is different).
    pub no_such_user: HashSet<String>,
    /// MAIL FROM answered `553 5.1.8` (a misconfigured sender domain).
    pub reject_sender: bool,
}

#[derive(Clone)]
struct Capture {
    received: Arc<Mutex<Vec<Received>>>,
    faults: Arc<Mutex<Faults>>,
    current_from: String,
    current_to: Vec<String>,
    current_data: Vec<u8>,
    seed: Arc<AtomicUsize>,
}

impl Handler for Capture {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, _from: &str) -> Response {
        if self.faults.lock().unwrap().reject_sender {
            return Response::custom(553, "5.1.8 sender address domain does not exist".into());
        }
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let faults = self.faults.lock().unwrap();
        if faults.always_451 {
            return Response::custom(451, "4.3.0 temporarily unavailable".into());
        }
        if faults.no_such_user.contains(to) {
            return Response::custom(
                550,
                format!("5.1.1 <{to}>: Recipient address rejected: User unknown in virtual mailbox table"),
            );
        }
        if faults.rcpt_451_rate > 0.0 {
            // A cheap deterministic-per-call pseudo-random stream.
            let n = self.seed.fetch_add(1, Ordering::Relaxed) as u64;
            let x = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407)
                >> 33;
            if (x % 1000) as f64 / 1000.0 < faults.rcpt_451_rate {
                return Response::custom(451, "4.7.1 greylisted, try again later".into());
            }
        }
        response::OK
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current_from = from.to_string();
        self.current_to = to.to_vec();
        self.current_data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current_data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.received.lock().unwrap().push(Received {
            from: std::mem::take(&mut self.current_from),
            to: std::mem::take(&mut self.current_to),
            data: std::mem::take(&mut self.current_data),
            at: Instant::now(),
        });
        response::OK
    }
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub faults: Arc<Mutex<Faults>>,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Self::start_on(listener)
    }

    /// Serves on a given listener (to bring a server up on a port that a
    /// test reserved while it was down).
    pub fn start_on(listener: TcpListener) -> SmtpServer {
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let faults = Arc::new(Mutex::new(Faults::default()));
        let handler = Capture {
            received: received.clone(),
            faults: faults.clone(),
            current_from: String::new(),
            current_to: Vec::new(),
            current_data: Vec::new(),
            seed: Arc::new(AtomicUsize::new(7)),
        };
        let mut server = Server::new(handler);
        server
            .with_name("test.smtp")
            .with_num_threads(64)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpServer {
            addr,
            received,
            faults,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://{}?tls=none", self.addr)
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// How many copies each recipient got.
    pub fn copies_by_recipient(&self) -> std::collections::HashMap<String, usize> {
        let mut copies = std::collections::HashMap::new();
        for message in self.messages() {
            for to in message.to {
                *copies.entry(to).or_insert(0) += 1;
            }
        }
        copies
    }
}

/// A free port nobody listens on (yet).
pub fn reserve_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A TCP proxy in front of the test server that misbehaves on request.
pub struct Proxy {
    pub addr: SocketAddr,
    /// Client writes that carried MAIL, RCPT and DATA together.
    pub pipelined_writes: Arc<AtomicUsize>,
}

/// For its first `cut_first` connections, the proxy closes both sides once
/// the client has sent `DATA` and part of a message: a connection dropped
/// mid-DATA. With `advertise_pipelining`, it adds PIPELINING to the
/// server's EHLO reply (mailin reads commands line by line from a buffer,
/// so pipelined commands work; it just never says so).
pub fn start_proxy(upstream: SocketAddr, cut_first: usize, advertise_pipelining: bool) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let pipelined_writes = Arc::new(AtomicUsize::new(0));
    let counter = pipelined_writes.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let cut = accepted.fetch_add(1, Ordering::SeqCst) < cut_first;
            let counter = counter.clone();
            std::thread::spawn(move || proxy(client, upstream, cut, advertise_pipelining, counter));
        }
    });
    Proxy {
        addr,
        pipelined_writes,
    }
}

fn proxy(
    mut client: TcpStream,
    upstream: SocketAddr,
    cut: bool,
    pipelining: bool,
    pipelined: Arc<AtomicUsize>,
) {
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    let (mut client_read, mut server_write) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let down = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let n = match server.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut chunk = buf[..n].to_vec();
            if pipelining {
                let text = String::from_utf8_lossy(&chunk)
                    .replace("250 8BITMIME\r\n", "250-8BITMIME\r\n250 PIPELINING\r\n")
                    .replace("250-8BITMIME\r\n", "250-8BITMIME\r\n250-PIPELINING\r\n");
                chunk = text.into_bytes();
            }
            if client.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = client.shutdown(std::net::Shutdown::Both);
    });
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let mut after_data = 0usize;
    loop {
        let n = match client_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let read = &buf[..n];
        if contains(read, b"MAIL FROM") && contains(read, b"RCPT TO") && contains(read, b"DATA\r\n")
        {
            pipelined.fetch_add(1, Ordering::SeqCst);
        }
        if cut {
            if after_data > 0 || contains(&seen, b"DATA\r\n") {
                after_data += n;
                if after_data > 200 {
                    // Forward a little of the message, then vanish.
                    let _ = server_write.write_all(&read[..n / 2]);
                    let _ = server_write.shutdown(std::net::Shutdown::Both);
                    let _ = client_read.shutdown(std::net::Shutdown::Both);
                    break;
                }
            } else {
                seen.extend_from_slice(read);
            }
        }
        if server_write.write_all(read).is_err() {
            break;
        }
    }
    let _ = server_write.shutdown(std::net::Shutdown::Both);
    let _ = down.join();
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// A scripted server for one protocol corner mailin cannot play: it offers
/// PIPELINING, refuses every RCPT with 550 5.1.1, and still answers DATA
/// with 354 (RFC 2920 §3.1 allows it). It then reads the "message" up to
/// the lone dot, as a real server in DATA mode would. Returns its address
/// and how many messages it saw end.
pub fn start_data_after_refusal_server() -> (SocketAddr, Arc<AtomicUsize>) {
    use std::io::BufRead;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let ended = Arc::new(AtomicUsize::new(0));
    let counter = ended.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = std::io::BufReader::new(stream);
                let _ = writer.write_all(b"220 scripted ESMTP\r\n");
                let mut in_data = false;
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    let command = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if in_data {
                        if command == "." {
                            in_data = false;
                            counter.fetch_add(1, Ordering::SeqCst);
                            b"554 5.5.1 no valid recipients\r\n"
                        } else {
                            b""
                        }
                    } else if command.starts_with("EHLO") {
                        b"250-scripted\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                    } else if command.starts_with("MAIL") {
                        b"250 2.1.0 ok\r\n"
                    } else if command.starts_with("RCPT") {
                        b"550 5.1.1 no such user\r\n"
                    } else if command == "DATA" {
                        in_data = true;
                        b"354 go ahead\r\n"
                    } else if command == "QUIT" {
                        let _ = writer.write_all(b"221 bye\r\n");
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    if !reply.is_empty() && writer.write_all(reply).is_err() {
                        break;
                    }
                    line.clear();
                }
            });
        }
    });
    (addr, ended)
}

/// A test server's front door that can die: [`Killable::kill`] stops
/// passing commands on, closes the port (new connections are refused),
/// and then cuts every open connection.
pub struct Killable {
    pub addr: SocketAddr,
    killed: Arc<std::sync::atomic::AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

/// A [`Killable`] in front of `upstream`.
pub fn start_killable(upstream: SocketAddr) -> Killable {
    use std::sync::atomic::AtomicBool;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Polled, so that the listener can be dropped (the port closed) once
    // killed; a blocking accept would keep it open.
    listener.set_nonblocking(true).unwrap();
    let killed = Arc::new(AtomicBool::new(false));
    let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
    let (flag, open) = (killed.clone(), streams.clone());
    std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            let client = match listener.accept() {
                Ok((client, _)) => client,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    continue;
                }
                Err(_) => continue,
            };
            if flag.load(Ordering::SeqCst) {
                break;
            }
            client.set_nonblocking(false).unwrap();
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            {
                let mut open = open.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
            }
            let (client_read, server_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let flag = flag.clone();
            // Client to server: nothing passes once killed, so the server
            // never completes a message whose reply the client cannot get.
            std::thread::spawn(move || pass_until(client_read, server_write, &flag));
            let never = Arc::new(AtomicBool::new(false));
            std::thread::spawn(move || pass_until(server, client, &never));
        }
    });
    Killable {
        addr,
        killed,
        streams,
    }
}

fn pass_until(mut from: TcpStream, mut to: TcpStream, killed: &std::sync::atomic::AtomicBool) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if killed.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

impl Killable {
    pub fn url(&self) -> String {
        format!("smtp://{}?tls=none", self.addr)
    }

    /// Dies: commands stop reaching the server at once and the port
    /// closes; replies already on their way get a moment to arrive (so a
    /// message is either accepted and known to be, or not accepted), then
    /// every connection is cut.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(300));
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}
