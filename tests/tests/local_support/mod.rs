//! Shared by `local_process.rs` and `local_podman.rs`: a deployment file in a sandbox,
//! a minimal HTTP/1.1 client over `TcpStream` (independent of the kit's own), the
//! discovery handshake as an agent would do it, and a guard that always runs `down`.

#![allow(dead_code)]

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

/// Whether the pid is a live (non-zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next()
                .unwrap_or("");
            state != "Z" && state != "X"
        }
        Err(_) => false,
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
