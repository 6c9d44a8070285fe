//! Shared by the end-to-end tests: the real `wb-engine` binary, a cleared
//! environment, temp directories, and a tiny HTTP/1.1 client over
//! `std::net::TcpStream`.
#![allow(dead_code)] // each test binary uses its own subset

pub mod pg;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The engine under test: the one cargo built, or `WB_ENGINE_BIN` (e.g. the
/// static release binary, or an older build to see a test fail).
pub fn bin() -> std::ffi::OsString {
    std::env::var_os("WB_ENGINE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_wb-engine").into())
}
pub const STARTUP_LIMIT: Duration = Duration::from_secs(10);
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- the engine

/// One running engine with its own directories, stopped on drop.
pub struct Engine {
    pub child: Child,
    /// Keeps the data, discovery and log directories alive.
    pub _dirs: TempDir,
    pub disco: PathBuf,
    pub log: PathBuf,
    pub port: u16,
    pub pid: u32,
    pub token: String,
}

/// Starts the engine with only `WB_WEB=1 PORT=0 WB_BIND=127.0.0.1`, fresh
/// `WB_DATA`/`WB_DISCO`, and `vars` (which may override any of them).
pub fn start(vars: &[(&str, &str)]) -> Engine {
    start_with(vars, |_, _| {})
}

/// Like [`start`], with `setup` given the command (to add limits or a user)
/// and the engine's temp directory before the process is spawned.
pub fn start_with(vars: &[(&str, &str)], setup: impl FnOnce(&mut Command, &Path)) -> Engine {
    start_program(&bin(), vars, setup)
}

/// [`start_with`] running `program` instead of the engine under test (a copy
/// of it another user can reach).
pub fn start_program(
    program: &std::ffi::OsStr,
    vars: &[(&str, &str)],
    setup: impl FnOnce(&mut Command, &Path),
) -> Engine {
    let dirs = TempDir::new().unwrap();
    let disco = vars
        .iter()
        .find(|(k, _)| *k == "WB_DISCO")
        .map_or_else(|| dirs.path().join("disco"), |(_, v)| PathBuf::from(v));
    let log = dirs.path().join("stderr.log");
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("WB_WEB", "1")
        .env("PORT", "0")
        .env("WB_BIND", "127.0.0.1")
        .env("WB_DATA", dirs.path().join("data"))
        .env("WB_DISCO", &disco);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    setup(&mut cmd, dirs.path());
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut engine = Engine {
        pid: child.id(),
        child,
        _dirs: dirs,
        disco,
        log,
        port: 0,
        token: String::new(),
    };
    let runtime = engine.wait_for_runtime();
    engine.port = u16::try_from(runtime["port"].as_u64().expect("port is a number")).unwrap();
    engine.token = runtime["token"]
        .as_str()
        .expect("token is a string")
        .to_owned();
    engine
}

impl Engine {
    pub fn runtime_path(&self) -> PathBuf {
        self.disco.join("runtime.json")
    }

    pub fn wait_for_runtime(&mut self) -> serde_json::Value {
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            if let Ok(text) = fs::read_to_string(self.runtime_path()) {
                return serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("runtime.json is not JSON ({e}): {text:?}"));
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("engine exited early ({status}); stderr:\n{}", self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "no runtime.json after {STARTUP_LIMIT:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid).unwrap();
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill failed");
    }

    /// Waits at most `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM and wait for a clean exit; panics otherwise.
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit(Duration::from_secs(2));
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "stderr:\n{}",
            self.stderr()
        );
    }

    pub fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> Resp {
        http(self.port, method, path, Some(&self.token), body)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the binary to completion (for start-up refusals) with a cleared
/// environment plus `vars`; returns the exit status and stderr.
pub fn run_to_exit(vars: &[(&str, &str)], disco: &Path) -> (ExitStatus, String) {
    let (status, _stdout, stderr) = run_to_exit_output(vars, disco);
    (status, stderr)
}

/// [`run_to_exit`] that also returns stdout.
pub fn run_to_exit_output(vars: &[(&str, &str)], disco: &Path) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(bin());
    cmd.env_clear()
        .env("WB_DISCO", disco)
        .env("WB_DATA", disco.join("data"));
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + STARTUP_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the engine did not exit on its own");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    (status, stdout, stderr)
}

// ------------------------------------------------------------ a tiny client

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }
}

/// One HTTP/1.1 request on its own connection.
pub fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&[u8]>) -> Resp {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw(port, head.as_bytes(), body.unwrap_or_default())
}

/// Sends `head` (request line and headers, without the blank line) and `body`,
/// then reads one response: headers, then exactly Content-Length bytes.
pub fn raw(port: u16, head: &[u8], body: &[u8]) -> Resp {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    // One write: an engine that answers before reading (a 503 at the
    // connection cap) must not turn a later write of ours into a reset.
    let mut request = Vec::with_capacity(head.len() + 2 + body.len());
    request.extend_from_slice(head);
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    stream.write_all(&request).unwrap();
    stream.flush().unwrap();
    read_response(&mut stream)
}

pub fn read_response(stream: &mut TcpStream) -> Resp {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before the headers ended: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(
        parts.next(),
        Some("HTTP/1.1"),
        "status line {status_line:?}"
    );
    let status: u16 = parts.next().unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header line");
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    let length: usize = resp
        .header("Content-Length")
        .expect("the engine always sends Content-Length")
        .parse()
        .unwrap();
    while body.len() < length {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(body.len(), length, "more bytes than Content-Length");
    if status == 100 {
        panic!("unexpected 100 Continue");
    }
    Resp { body, ..resp }
}

pub fn names(resp: &Resp) -> Vec<String> {
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Content-Type"), Some("application/json"));
    serde_json::from_slice(&resp.body).expect("a JSON array of strings")
}
