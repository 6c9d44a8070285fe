//! Shared by the cloud tests: a sandbox with the flyctl double first on PATH, canary
//! secrets, the double's call log, file walks, and a tiny HTTP server for `verify`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use wb_tests::{Sandbox, doubles_dir, repo_root};

/// Canary secret values: `=`, both quotes, spaces, a newline, each with a unique token
/// that must never show up anywhere but the secret store.
pub const CANARIES: &[(&str, &str)] = &[
    (
        "WB_S3_KEY",
        "AKIA=cnry-s3key-Q7 \"dq\" 'sq' sp ace\nline two",
    ),
    (
        "WB_S3_SECRET",
        "s3=cnry-s3secret-K2 with \"quotes\" and = signs",
    ),
    (
        "WB_DATABASE_URL",
        "postgres://u:cnry-dbpass-M4@db.example/x?a=b c",
    ),
    (
        "STRIPE_API_KEY",
        "sk_live=cnry-stripe-Z9 'one'\n\"two\" three",
    ),
];

/// The unique token of each canary (what the tests search for).
pub fn canary_tokens() -> Vec<&'static str> {
    vec![
        "cnry-s3key-Q7",
        "cnry-s3secret-K2",
        "cnry-dbpass-M4",
        "cnry-stripe-Z9",
    ]
}

/// The PATH recipes run with in these tests: the double, then the system.
pub fn double_path() -> String {
    format!("{}:/usr/bin:/bin", doubles_dir().display())
}

/// Whether the double can run (python3 ≥ 3.8 in /usr/bin or /bin); skips loudly if not,
/// fails under `WB_REQUIRE_TOOLS=1`.
pub fn double_ready() -> bool {
    let ok = Command::new("/usr/bin/env")
        .args([
            "python3",
            "-c",
            "import sys; sys.exit(sys.version_info < (3, 8))",
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("WB_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("python3 (>= 3.8) is required in /usr/bin or /bin for the flyctl double");
        }
        eprintln!(
            "SKIPPED: python3 (>= 3.8) is not in /usr/bin or /bin — the flyctl double needs it"
        );
    }
    ok
}

/// A sandbox for the Fly recipe: the double first on PATH, logged in by token, the
/// canary secrets exported, its own TMPDIR, and `deployments/<file>` copied into work/.
pub fn fly_sandbox(file: &str) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set("PATH", double_path());
    sb.set("FLY_API_TOKEN", "fo1_cnry-flytoken-P3");
    sb.set("TMPDIR", sb.path().join("tmp").display().to_string());
    std::fs::create_dir_all(sb.path().join("tmp")).unwrap();
    for (name, value) in CANARIES {
        sb.set(name, *value);
    }
    let text = std::fs::read_to_string(repo_root().join("deployments").join(file)).unwrap();
    sb.write(&format!("work/{file}"), &text);
    sb
}

/// The double's call log: one JSON object per flyctl invocation.
pub fn calls(sb: &Sandbox) -> Vec<Value> {
    let path = sb.home().join(".fly-double/calls.log");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn commands(calls: &[Value]) -> Vec<String> {
    calls
        .iter()
        .map(|c| c["command"].as_str().unwrap_or("").to_string())
        .collect()
}

pub fn mutating(calls: &[Value]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c["mutating"] == Value::Bool(true))
        .map(|c| c["command"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Entries directly in the sandbox's TMPDIR (the kit's temp dirs go there).
pub fn temp_entries(sb: &Sandbox) -> Vec<String> {
    std::fs::read_dir(sb.path().join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts no canary token is in any file under `dir` except those named `allowed`.
#[track_caller]
pub fn assert_no_canary_in_files(dir: &Path, allowed: &[&str]) {
    for file in files_under(dir) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if allowed.contains(&name.as_str()) {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for token in canary_tokens() {
            assert!(
                !text.contains(token),
                "canary {token} in {}",
                file.display()
            );
        }
    }
}

/// The bearer in a deployment's store (read with the kit's own library).
pub fn stored(sb: &Sandbox, id: &str, name: &str) -> Option<String> {
    let store = xtask::state::store::Store::at(&sb.wb_home().join(id));
    store
        .load()
        .unwrap()
        .get(name)
        .map(|s| s.expose().to_string())
}

/// A tiny HTTP server on 127.0.0.1: `GET /health` answers 200 when the Authorization
/// header is `Bearer <expected>`, 401 otherwise. Records each request's first line and
/// whether the bearer matched.
pub struct HealthServer {
    pub base: String,
    pub seen: Arc<Mutex<Vec<(String, bool)>>>,
}

impl HealthServer {
    pub fn start(expected: String) -> HealthServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                let mut ok = false;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("authorization")
                        && v.trim() == format!("Bearer {expected}")
                    {
                        ok = true;
                    }
                }
                let healthy = ok && first.starts_with("GET /health ");
                log.lock().unwrap().push((first.trim().to_string(), ok));
                let (status, body) = if healthy {
                    ("200 OK", "ok")
                } else {
                    ("401 Unauthorized", "no")
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        HealthServer { base, seen }
    }
}
