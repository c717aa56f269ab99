//! The web server's limits over real TCP: slow, silent, lying and idle
//! clients are cut off; past the connection cap clients wait instead of
//! failing; SIGTERM does not wait for idle keep-alive connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use herald::config::Settings;
use herald::http::server::{serve, ServerLimits};
use herald::http::{router, AppState};

use crate::helpers::{start_serve, stderr, Workspace};

const LIMITS: ServerLimits = ServerLimits {
    header_timeout: Duration::from_secs(1),
    body_timeout: Duration::from_secs(1),
    idle_timeout: Duration::from_secs(2),
    max_connections: 3,
    shutdown_grace: Duration::from_secs(2),
};

/// A server on a loopback port, running on its own thread's runtime.
fn start() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = router(AppState::new(Settings::default()));
            serve(listener, app, LIMITS, std::future::pending()).await;
        });
    });
    rx.recv().unwrap()
}

/// How long until the server closes `stream` (reads until EOF or reset),
/// giving up after `limit`.
fn time_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(start.elapsed())
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn a_half_sent_request_is_cut_off_after_the_header_timeout() {
    let address = start();
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let closed = time_until_closed(&mut stream, Duration::from_secs(10));
    assert!(
        closed.is_some_and(|t| t < Duration::from_secs(4)),
        "{closed:?}"
    );
}

#[test]
fn a_client_that_sends_nothing_is_cut_off() {
    let address = start();
    let mut stream = TcpStream::connect(address).unwrap();
    let closed = time_until_closed(&mut stream, Duration::from_secs(10));
    assert!(
        closed.is_some_and(|t| t < Duration::from_secs(4)),
        "{closed:?}"
    );
}

#[test]
fn a_promised_body_that_never_comes_does_not_hold_the_connection() {
    let address = start();
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .write_all(
            b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000000000\r\n\r\nemail=",
        )
        .unwrap();
    let closed = time_until_closed(&mut stream, Duration::from_secs(10));
    assert!(
        closed.is_some_and(|t| t < Duration::from_secs(5)),
        "{closed:?}"
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let address = start();
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut response = [0u8; 1024];
    let n = stream.read(&mut response).unwrap();
    assert!(String::from_utf8_lossy(&response[..n]).starts_with("HTTP/1.1 200"));
    let closed = time_until_closed(&mut stream, Duration::from_secs(10));
    assert!(
        closed.is_some_and(|t| t < Duration::from_secs(4)),
        "{closed:?}"
    );
}

#[test]
fn past_the_connection_cap_a_client_waits_and_is_then_served() {
    let address = start();
    let hogs: Vec<TcpStream> = (0..LIMITS.max_connections)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // Served once the silent connections were cut off, not before.
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    drop(hogs);
}

#[test]
fn sigterm_does_not_wait_for_idle_keep_alive_connections() {
    let ws = Workspace::with_examples("");
    assert!(ws.build().status.success());
    let (mut child, address) = start_serve(&ws, &[]);
    let mut idle = TcpStream::connect(address).expect("herald serve listens");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut response = [0u8; 1024];
    let n = idle.read(&mut response).unwrap();
    assert!(String::from_utf8_lossy(&response[..n]).starts_with("HTTP/1.1 200"));

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(8) {
            let _ = child.kill();
            panic!("herald serve was still up 8 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", stderr(&output));
    drop(idle);
}

/// CPU time (user + system, in clock ticks) a process has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Out of file descriptors, `herald serve` neither spins on the failing
/// accept nor stops answering: idle clients are cut off and a health check
/// that came after 200 of them is served.
#[test]
fn out_of_descriptors_the_server_backs_off_and_recovers() {
    let ws = Workspace::with_examples("[server]\nheader_timeout_secs = 4\n");
    assert!(ws.build().status.success());
    let address: SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let log = ws.path().join("serve.log");
    // 128 descriptors, as in the report that found the fault.
    let mut child = std::process::Command::new("sh")
        .args(["-c", "ulimit -n 128 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_herald"))
        .args([
            "--config",
            ws.config().to_str().unwrap(),
            "serve",
            "--listen",
        ])
        .arg(address.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while TcpStream::connect(address).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "serve did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(address).expect("the backlog takes it"))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(child.id());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(child.id()) - before;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("Too many open files"),
        "the server never ran out of descriptors: {text}"
    );
    // Backing off, it used about 1 tick (of 100 a second) here; an accept
    // loop that retries at once used about 80.
    assert!(
        used < 25,
        "{used} ticks of CPU in 2 s while out of descriptors"
    );

    let mut health = TcpStream::connect(address).unwrap();
    health
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    health
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut response = String::new();
    let read = health.read_to_string(&mut response);
    let _ = child.kill();
    let _ = child.wait();
    drop(idle);
    assert!(read.is_ok(), "no answer to /healthz: {read:?}");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}
