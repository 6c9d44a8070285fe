//! Flood resistance (issue 14, High 1): idle-connection floods, running out
//! of descriptors or threads, slow clients, and concurrent uploads. Each
//! test is bounded well under a minute; time limits asserted are seconds.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// What `/health` must answer within while the engine is flooded.
const ANSWER_LIMIT: Duration = Duration::from_secs(5);

/// Raises this process's descriptor limit (the flood's sockets are ours too).
fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to our own struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
    assert!(
        lim.rlim_cur >= want,
        "need {want} descriptors, the hard limit is {}",
        lim.rlim_max
    );
}

/// Sets `resource` to `value` (soft and hard) in the child before exec.
fn limit_child(cmd: &mut std::process::Command, resource: libc::__rlimit_resource_t, value: u64) {
    // SAFETY: setrlimit is async-signal-safe; nothing is allocated.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            if libc::setrlimit(resource, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Opens `n` connections that send the start of a request and nothing more.
/// Connections the engine has already shed may fail to write: that is fine.
fn idle_flood(port: u16, n: usize) -> Vec<TcpStream> {
    let started = Instant::now();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            let _ = s.write_all(b"GET / HTTP/1.1\r\n");
            held.push(s);
        }
    }
    eprintln!(
        "{} of {n} idle connections open after {:?}",
        held.len(),
        started.elapsed()
    );
    held
}

/// `/health` on a new connection, asserted to answer 200 within the limit.
fn health_answers_in_time(engine: &Engine, context: &str) {
    let started = Instant::now();
    let resp = engine.call("GET", "/health", None);
    let took = started.elapsed();
    eprintln!("{context}: /health answered in {took:?}");
    assert_eq!(resp.status, 200, "{context}");
    assert!(
        took < ANSWER_LIMIT,
        "{context}: /health took {took:?}; stderr:\n{}",
        tail(&engine.stderr())
    );
}

/// Waits for `needle` in the engine's log: pressure is reported at most
/// once a second, so the line may come a moment after the event.
fn wait_for_log(engine: &Engine, needle: &str, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !engine.stderr().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "{why}: no {needle:?} in the log:\n{}",
            tail(&engine.stderr())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[test]
fn two_thousand_idle_connections_do_not_stop_health() {
    raise_nofile(4_096);
    let engine = start(&[("WB_HTTP_MAX_CONNECTIONS", "256")]);
    let flood = idle_flood(engine.port, 2_000);
    assert!(flood.len() >= 1_900, "only {} connected", flood.len());
    health_answers_in_time(&engine, "after 2,000 idle connections");
    assert_eq!(engine.call("GET", "/livez", None).body, b"ok");
    // Connections (one thread each) stay bounded: 256, shed ones included,
    // plus main, the signal thread, and a few threads past their slot's end.
    let threads = proc_status(engine.pid, "Threads:");
    assert!(threads <= 256 + 16, "{threads} threads");
    // A second wave on top of the first: still served.
    let more = idle_flood(engine.port, 500);
    health_answers_in_time(&engine, "after 2,500 idle connections");
    wait_for_log(
        &engine,
        "idle connection(s) shed",
        "the cap was never reached",
    );
    drop((flood, more));
}

#[test]
fn running_out_of_descriptors_does_not_kill_the_listener() {
    raise_nofile(2_048);
    // 64 descriptors: after stdio, the listener and the signal pipe, about
    // 55 connections before accept(2) fails with EMFILE.
    let engine = start_with(&[], |cmd, _| limit_child(cmd, libc::RLIMIT_NOFILE, 64));
    let flood = idle_flood(engine.port, 600);
    health_answers_in_time(&engine, "past the descriptor limit");
    wait_for_log(
        &engine,
        "Too many open files",
        "EMFILE was never hit, so this proves nothing",
    );
    drop(flood);
    // And it keeps serving normally afterwards.
    assert_eq!(
        engine.call("PUT", "/workbooks/after", Some(b"x")).status,
        201
    );
    health_answers_in_time(&engine, "after the flood");
}

#[test]
fn running_out_of_threads_as_nobody_does_not_kill_the_listener() {
    // SAFETY: geteuid has no preconditions.
    if !root_or_skip() {
        return;
    }
    raise_nofile(2_048);
    let _turn = nobody_turn();
    // 12 threads for the engine: main, signals, and about 10 connections.
    let nproc = nobody_threads() + 12;
    let (engine, _bindir) = start_as_nobody(&[], nproc);
    let flood = idle_flood(engine.port, 200);
    health_answers_in_time(&engine, "past the thread limit");
    wait_for_log(
        &engine,
        "cannot start a connection thread",
        "no thread start ever failed, so this proves nothing",
    );
    drop(flood);
    assert_eq!(
        engine.call("PUT", "/workbooks/after", Some(b"x")).status,
        201
    );
    assert_eq!(engine.call("GET", "/workbooks/after", None).body, b"x");
}

#[test]
fn an_engine_that_can_never_start_a_connection_exits_1() {
    // SAFETY: geteuid has no preconditions.
    if !root_or_skip() {
        return;
    }
    let _turn = nobody_turn();
    // Two threads for the engine: main and the signal thread, so no
    // connection thread can ever start. Giving up after 2 s of that.
    let nproc = nobody_threads() + 2;
    let (mut engine, _bindir) = start_as_nobody(&[("WB_HTTP_GIVE_UP_MS", "2000")], nproc);
    // Clients keep trying (each attempt is answered by a closed connection).
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = engine.wait_exit(Duration::from_millis(200)) {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running; stderr:\n{}",
            tail(&engine.stderr())
        );
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", engine.port)) {
            let _ = s.write_all(b"GET /livez HTTP/1.1\r\n\r\n");
        }
    };
    let log = engine.stderr();
    assert_eq!(status.code(), Some(1), "{}", tail(&log));
    assert!(log.contains("cannot serve"), "{}", tail(&log));
    assert!(log.contains("supervisor"), "{}", tail(&log));
    assert!(!engine.runtime_path().exists(), "runtime.json left behind");
}

/// RLIMIT_NPROC counts every thread of the user, across processes: the
/// tests that run the engine as `nobody` take turns (this lock), and set
/// their limits on top of what `nobody` already runs on this machine.
struct NobodyTurn(#[allow(dead_code)] std::fs::File);

fn nobody_turn() -> NobodyTurn {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("wb-engine-tests-nobody.lock"))
        .unwrap();
    // SAFETY: flock on a descriptor we own; released when the file closes.
    assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) }, 0);
    NobodyTurn(file)
}

/// Threads that user `nobody` runs right now (they count against its limit).
fn nobody_threads() -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next());
        if uid == Some("65534") {
            total += status
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
        }
    }
    total
}

/// Starts the engine as `nobody` under `RLIMIT_NPROC = nproc`. It runs a
/// copy of the binary in a directory `nobody` can reach: the checkout may be
/// where it cannot (under /root, say). Returns the copy's directory too.
fn start_as_nobody(vars: &[(&str, &str)], nproc: u64) -> (Engine, tempfile::TempDir) {
    use std::os::unix::fs::PermissionsExt;
    let bindir = tempfile::TempDir::new().unwrap();
    let copy = bindir.path().join("wb-engine");
    std::fs::copy(bin(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_tree(bindir.path(), 65_534, 65_534);
    let engine = start_program(copy.as_os_str(), vars, |cmd, dir| {
        chown_tree(dir, 65_534, 65_534);
        cmd.uid(65_534).gid(65_534);
        limit_child(cmd, libc::RLIMIT_NPROC, nproc);
    });
    (engine, bindir)
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            chown_tree(&path, uid, gid);
        } else {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        }
    }
}

/// Reads until end-of-file or `limit`; `None` if the connection was still
/// open (no EOF, no reset) when the limit passed.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(got),
            Err(_) => return None,
        }
    }
}

#[test]
fn idle_and_slow_connections_are_closed_after_the_timeout() {
    let engine = start(&[("WB_HTTP_IDLE_TIMEOUT_MS", "300")]);
    let limit = Duration::from_secs(5);

    // Nothing sent at all: closed silently.
    let mut silent = TcpStream::connect(("127.0.0.1", engine.port)).unwrap();
    let got = read_until_closed(&mut silent, limit).expect("a silent connection was kept");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));

    // Half a request head: 408, then closed.
    let mut half = TcpStream::connect(("127.0.0.1", engine.port)).unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let got = read_until_closed(&mut half, limit).expect("a half head was kept");
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 408 "), "{got:?}");

    // Trickling a byte every 20 ms does not extend the deadline: the head
    // must be complete within the timeout.
    let mut slow = TcpStream::connect(("127.0.0.1", engine.port)).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nX-Slow: ").unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < limit {
        if slow.write_all(b"a").is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match slow.read(&mut buf) {
            Ok(_) => {
                closed = true;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(closed, "a trickling client was kept for {limit:?}");

    // A kept-alive connection that goes quiet after a request: closed.
    let mut kept = TcpStream::connect(("127.0.0.1", engine.port)).unwrap();
    write!(kept, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let got = read_until_closed(&mut kept, limit).expect("an idle keep-alive was kept");
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.starts_with("HTTP/1.1 200 ") && got.ends_with("ok"),
        "{got:?}"
    );
    assert!(
        !got.contains("Connection: close"),
        "it was a keep-alive: {got:?}"
    );

    // None of that hurt anyone else.
    health_answers_in_time(&engine, "after the timeouts");
}

#[test]
fn a_stalled_body_times_out_with_408() {
    let engine = start(&[("WB_HTTP_BODY_TIMEOUT_MS", "300")]);
    let mut stalled = TcpStream::connect(("127.0.0.1", engine.port)).unwrap();
    write!(
        stalled,
        "PUT /workbooks/stalled HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\nabc",
        engine.token
    )
    .unwrap();
    let got =
        read_until_closed(&mut stalled, Duration::from_secs(5)).expect("a stalled body was kept");
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 408 "), "{got:?}");
    assert!(got.contains("Connection: close"), "{got:?}");
    assert_eq!(
        names(&engine.call("GET", "/workbooks", None)),
        Vec::<String>::new()
    );
}

#[test]
fn an_upload_over_the_budget_gets_503_with_retry_after() {
    const MIB: usize = 1 << 20;
    let engine = start(&[("WB_HTTP_UPLOAD_BUDGET_MIB", "16")]);
    // A 16 MiB upload takes the whole budget and stalls half-way.
    let mut big = TcpStream::connect(("127.0.0.1", engine.port)).unwrap();
    write!(
        big,
        "PUT /workbooks/big HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        engine.token,
        16 * MIB
    )
    .unwrap();
    big.write_all(&vec![1u8; 8 * MIB]).unwrap();
    // Meanwhile a small upload is refused (its head went first, but the
    // budget is checked once the big one is being read: wait for that).
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let resp = engine.call("PUT", "/workbooks/small", Some(b"small"));
        if resp.status == 503 || Instant::now() >= deadline {
            break resp;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("Retry-After"), Some("1"));
    assert!(refused.text().contains("retry"), "{}", refused.text());
    // Reads are not uploads: they go on.
    assert_eq!(engine.call("GET", "/workbooks", None).status, 200);
    // The big one completes, which frees the budget for the small one.
    big.write_all(&vec![2u8; 8 * MIB]).unwrap();
    let resp = read_response(&mut big);
    assert_eq!(resp.status, 201);
    assert_eq!(
        engine
            .call("PUT", "/workbooks/small", Some(b"small"))
            .status,
        201
    );
    assert_eq!(
        names(&engine.call("GET", "/workbooks", None)),
        ["big", "small"]
    );
}

#[test]
fn parallel_uploads_stay_within_the_memory_budget() {
    const MIB: usize = 1 << 20;
    const UPLOADS: usize = 24;
    const SIZE: usize = 8 * MIB;
    let dir = tempfile::TempDir::new().unwrap();
    let registry = dir.path().join("registry.db");
    // The registry on disk, so stored workbooks do not count as memory.
    let engine = start(&[
        ("WB_HTTP_UPLOAD_BUDGET_MIB", "16"),
        ("WB_REGISTRY", registry.to_str().unwrap()),
    ]);
    let before = proc_status(engine.pid, "VmRSS:");
    let port = engine.port;
    let token = engine.token.clone();
    let handles: Vec<_> = (0..UPLOADS)
        .map(|i| {
            let token = token.clone();
            std::thread::spawn(move || {
                let body = vec![i as u8; SIZE];
                let path = format!("/workbooks/w{i}");
                // A well-behaved client: on 503, wait as told and retry.
                let mut refusals = 0;
                loop {
                    let resp = http(port, "PUT", &path, Some(&token), Some(&body));
                    if resp.status != 503 {
                        return (resp.status, refusals);
                    }
                    assert_eq!(resp.header("Retry-After"), Some("1"));
                    refusals += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        })
        .collect();
    let results: Vec<(u16, usize)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results.iter().all(|(s, _)| *s == 201), "{results:?}");
    assert!(
        results.iter().any(|(_, r)| *r > 0),
        "no upload was ever refused, so the budget was never tested"
    );
    // 24 × 8 MiB buffered at once would be 192 MiB; the budget holds 16 MiB
    // of bodies (plus one copy inside SQLite while storing).
    let peak = proc_status(engine.pid, "VmHWM:") / 1024;
    assert!(
        peak < before / 1024 + 96,
        "peak RSS {peak} MiB (at start {} MiB)",
        before / 1024
    );
    assert_eq!(
        names(&engine.call("GET", "/workbooks", None)).len(),
        UPLOADS
    );
}

#[test]
fn expect_100_continue_is_answered_only_when_the_body_is_wanted() {
    let engine = start(&[]);
    // Authorized: 100 Continue, then the body, then 201.
    let mut s = TcpStream::connect(("127.0.0.1", engine.port)).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    write!(
        s,
        "PUT /workbooks/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        engine.token
    )
    .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").unwrap();
    assert_eq!(read_response(&mut s).status, 201);
    assert_eq!(engine.call("GET", "/workbooks/c", None).body, b"hello");
    // Unauthorized: the final answer at once, no 100, body never sent.
    let mut s = TcpStream::connect(("127.0.0.1", engine.port)).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(
        b"PUT /workbooks/d HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let resp = read_response(&mut s);
    assert_eq!(resp.status, 401);
    assert_eq!(resp.header("Connection"), Some("close"));
}

#[test]
fn a_refused_request_cannot_hold_its_connection_by_trickling_its_body() {
    // Long timeouts, so only the drain's own short deadline can close it.
    let engine = start(&[
        ("WB_HTTP_BODY_TIMEOUT_MS", "60000"),
        ("WB_HTTP_IDLE_TIMEOUT_MS", "60000"),
    ]);
    let mut s = TcpStream::connect(("127.0.0.1", engine.port)).unwrap();
    // No token, a small declared body, sent one byte at a time.
    s.write_all(b"PUT /workbooks/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let closed = loop {
        if started.elapsed() > Duration::from_secs(10) {
            break false;
        }
        if s.write_all(b"a").is_err() {
            break true;
        }
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        closed,
        "a trickling refused request kept its connection for 10 s"
    );
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 401 "), "{got:?}");
    assert!(got.contains("Connection: close"), "{got:?}");
}

#[test]
fn when_every_connection_is_mid_request_a_newcomer_gets_503() {
    let engine = start(&[("WB_HTTP_MAX_CONNECTIONS", "2")]);
    // Two authenticated uploads that stall inside their bodies: busy, so
    // neither can be shed.
    let busy: Vec<TcpStream> = (0..2)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", engine.port)).unwrap();
            write!(
                s,
                "PUT /workbooks/busy{i} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\nabc",
                engine.token
            )
            .unwrap();
            s
        })
        .collect();
    // The first that finds both busy is answered 503 (after waiting up to a
    // second for a slot); retry until then, the heads may still be in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    let resp = loop {
        let resp = engine.call("GET", "/health", None);
        if resp.status == 503 || Instant::now() >= deadline {
            break resp;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(resp.status, 503, "{}", tail(&engine.stderr()));
    assert_eq!(resp.header("Retry-After"), Some("1"));
    // Once one finishes, there is room again.
    drop(busy);
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.call("GET", "/health", None).status != 200 {
        assert!(
            Instant::now() < deadline,
            "no room after the busy ones ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_log(&engine, "refused with 503", "the refusal was not reported");
}

/// RLIMIT_NPROC binds only a non-root user, and becoming `nobody` needs root: without
/// root the test is skipped — unless `WB_REQUIRE_TOOLS=1` (CI), where that fails.
fn root_or_skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let why = "needs root to run the engine as `nobody` under an nproc limit";
    assert!(
        std::env::var("WB_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "WB_REQUIRE_TOOLS=1 and this test {why}"
    );
    eprintln!("SKIPPED: {why}");
    false
}
