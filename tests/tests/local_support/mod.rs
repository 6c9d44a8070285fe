//! Shared by the local end-to-end tests (`backend_contract.rs`, `local_process.rs`,
//! `local_podman.rs`): a deployment file in a sandbox, a minimal HTTP/1.1 client over
//! `TcpStream` (independent of the kit's own), the discovery handshake as an agent would
//! do it, a guard that always runs `down`, and [`backends`]: each backend's sandbox and
//! the few things the contract suite must ask of it.

#![allow(dead_code)]

pub mod backends;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use wb_tests::{Run, Sandbox};

/// A unique, valid deployment id for this test process.
pub fn unique_id(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// Writes `<id>.org` in the sandbox's working dir: a local deployment, plus `extra`
/// drawer lines and trailing lines (e.g. `#+DEPLOY_SECRETS:`). Returns the file name.
pub fn write_deployment(sb: &Sandbox, id: &str, extra: &str, trailer: &str) -> String {
    let text = format!(
        "* {id} :deployment:\n:PROPERTIES:\n:ID: {id}\n:ENGINE_PLACE: local\n:TENANCY_MODE: single\n:STORAGE: local-fs\n:DATABASE: sqlite\n:AUTH: trusted\n{extra}:END:\n{trailer}"
    );
    let file = format!("{id}.org");
    sb.write(&format!("work/{file}"), &text);
    file
}

/// `deploy <verb> <file> --json`, with the JSON object checked against the exit code.
pub fn json(sb: &Sandbox, verb: &str, file: &str) -> (Run, Value) {
    let run = sb.deploy(&[verb, file, "--json"]);
    let v = run.json();
    assert_eq!(v["ok"], Value::Bool(run.code == 0), "{run:?}");
    assert_eq!(v["verb"], verb);
    (run, v)
}

/// `apply --json`, which must succeed; returns its JSON.
#[track_caller]
pub fn apply_ok(sb: &Sandbox, file: &str) -> Value {
    let (run, v) = json(sb, "apply", file);
    run.expect_code(0);
    assert!(
        run.stderr.contains("runtime up — http://127.0.0.1:"),
        "{}",
        run.stderr
    );
    v
}

/// What an agent reads: the URL's port from `status --json`, the token from the
/// discovery file `status --json` names.
pub struct Endpoint {
    pub port: u16,
    pub token: String,
    pub discovery: PathBuf,
}

#[track_caller]
pub fn endpoint(sb: &Sandbox, file: &str) -> Endpoint {
    let (run, v) = json(sb, "status", file);
    run.expect_code(0);
    assert_eq!(v["place"], "local");
    assert_eq!(v["running"], true, "{v}");
    let url = v["url"].as_str().expect("status carries url");
    let port = url.rsplit(':').next().unwrap().parse().unwrap();
    let discovery = PathBuf::from(v["discovery"].as_str().expect("status carries discovery"));
    let runtime: Value =
        serde_json::from_str(&std::fs::read_to_string(&discovery).unwrap()).unwrap();
    Endpoint {
        port,
        token: runtime["token"].as_str().unwrap().to_string(),
        discovery,
    }
}

/// One HTTP/1.1 request to 127.0.0.1:port; returns (status, body).
pub fn http(method: &str, port: u16, path: &str, token: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length:")
            .map(|v| v.trim().parse::<usize>().unwrap())
    });
    let rest = raw[end + 4..].to_vec();
    let body = match length {
        Some(n) => rest[..n].to_vec(),
        None => rest,
    };
    (status, body)
}

/// Bytes that are not text: a workbook is opaque.
pub fn workbook_bytes() -> Vec<u8> {
    let mut bytes = b"WB\x00\x01 workbook \xff\xfe".to_vec();
    bytes.extend((0..=255u8).cycle().take(70_000));
    bytes
}

/// Runs `down` when dropped, so a failing test leaves nothing running.
pub struct DownOnDrop<'a> {
    pub sb: &'a Sandbox,
    pub file: String,
    pub extra: Option<Box<dyn Fn()>>,
}

impl<'a> DownOnDrop<'a> {
    pub fn new(sb: &'a Sandbox, file: &str) -> Self {
        DownOnDrop {
            sb,
            file: file.to_string(),
            extra: None,
        }
    }
}

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.sb.deploy(&["down", &self.file]);
        if let Some(extra) = &self.extra {
            extra();
        }
    }
}

/// The state letter of a `/proc/…/stat` line (`Z` zombie, `X` dead, …).
fn stat_state(stat: &str) -> &str {
    stat.rfind(')')
        .and_then(|close| stat[close + 1..].split_whitespace().next())
        .unwrap_or("")
}

/// Whether the pid is a live process: some thread of it is not a zombie. After `kill -9`
/// the main thread turns zombie first while the other threads still hold the process's
/// files — its listening socket among them, which then resets connections instead of
/// refusing them — so the main thread's state alone is not enough.
pub fn alive(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            .is_ok_and(|s| !matches!(stat_state(&s), "Z" | "X" | "x" | ""))
    })
}

/// Whether some socket LISTENs on `port` (any address, IPv4 or IPv6), per /proc/net.
pub fn listening(port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                f.len() > 3 && f[1].ends_with(&suffix) && f[3] == "0A"
            })
    })
}

/// Polls `done` every 20 ms for up to `limit`; says whether it came true.
pub fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Samples every process's argv (`/proc/*/cmdline`) in a background thread until
/// [`ArgvSampler::finish`]: no argv may hold the canary. So that a sampler which saw
/// nothing cannot pass, it also counts the samples in which some argv held `witness`
/// (the deployment file's name: the kit's own argv while it runs).
pub struct ArgvSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<(usize, usize, Vec<String>)>,
}

impl ArgvSampler {
    pub fn start(canary: &str, witness: &str) -> ArgvSampler {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (canary, witness) = (canary.to_string(), witness.to_string());
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut sweeps, mut witnessed, mut leaks) = (0, 0, Vec::new());
            while !flag.load(Ordering::SeqCst) {
                let mut saw_witness = false;
                for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let name = entry.file_name();
                    if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                        continue;
                    }
                    let argv = read(&entry.path().join("cmdline"));
                    if contains(&argv, &canary) {
                        leaks.push(String::from_utf8_lossy(&argv).replace('\0', " "));
                    }
                    saw_witness |= contains(&argv, &witness);
                }
                sweeps += 1;
                witnessed += usize::from(saw_witness);
                std::thread::sleep(Duration::from_millis(2));
            }
            (sweeps, witnessed, leaks)
        });
        ArgvSampler { stop, handle }
    }

    /// Stops sampling; asserts no argv held the canary and the kit was seen running.
    #[track_caller]
    pub fn finish(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (sweeps, witnessed, leaks) = self.handle.join().expect("the sampler ran");
        assert!(leaks.is_empty(), "the canary was in an argv: {leaks:?}");
        assert!(
            witnessed > 0,
            "the sampler never saw the kit running ({sweeps} sweeps of /proc)"
        );
        eprintln!("argv sampler: {sweeps} sweeps of /proc/*/cmdline, the kit seen in {witnessed}");
    }
}

pub fn data_dir(sb: &Sandbox, id: &str) -> PathBuf {
    sb.wb_home().join(id).join("data")
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}
