//! End-to-end tests: the real `wb-engine` binary, a cleared environment, temp
//! directories, and a tiny HTTP/1.1 client over `std::net::TcpStream`.

mod common;

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use common::*;
// ------------------------------------------------------------------ tests

#[test]
fn health_with_token_is_200_ok() {
    let engine = start(&[("WB_PUBLIC_BEARER", "health-token")]);
    let resp = engine.call("GET", "/health", None);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), r#"{"status":"ok"}"#);
    assert!(resp.text().contains("ok"));
    assert_eq!(resp.header("Content-Type"), Some("application/json"));
}

#[test]
fn livez_is_200_ok_without_a_token_and_nothing_else_is() {
    let engine = start(&[("WB_PUBLIC_BEARER", "livez-token")]);
    for token in [None, Some("wrong"), Some("livez-token")] {
        let resp = http(engine.port, "GET", "/livez", token, None);
        assert_eq!(resp.status, 200, "token {token:?}");
        assert_eq!(resp.body, b"ok", "exactly `ok`, no detail");
        assert_eq!(resp.header("WWW-Authenticate"), None);
    }
    // HEAD: same status, the length of `ok`, no body.
    let mut stream = TcpStream::connect(("127.0.0.1", engine.port)).unwrap();
    stream
        .write_all(b"HEAD /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.ends_with("\r\n\r\n"), "HEAD has no body: {answer:?}");
    // Only GET and HEAD; the check reveals nothing else and is the only open path.
    assert_eq!(
        http(engine.port, "POST", "/livez", None, Some(b"")).status,
        405
    );
    for path in ["/livez/", "/livez/x", "/Livez", "/health", "/workbooks"] {
        assert_eq!(
            http(engine.port, "GET", path, None, None).status,
            401,
            "{path}"
        );
    }
    assert_eq!(engine.call("GET", "/livez?full=1", None).body, b"ok");
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let engine = start(&[("WB_PUBLIC_BEARER", "ka-token")]);
    let mut s = TcpStream::connect(("127.0.0.1", engine.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = "Authorization: Bearer ka-token\r\n";
    // A PUT, then a GET with a small body the handler ignores (drained),
    // then two pipelined requests in one write: all on one connection.
    write!(
        s,
        "PUT /workbooks/k HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 3\r\n\r\nabc"
    )
    .unwrap();
    assert_eq!(read_response(&mut s).status, 201);
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 4\r\n\r\njunk"
    )
    .unwrap();
    let resp = read_response(&mut s);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Connection"), None, "kept alive");
    write!(
        s,
        "GET /workbooks/k HTTP/1.1\r\nHost: x\r\n{auth}\r\nGET /workbooks HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    // Both answers may come in one read: take everything up to the close.
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut all).unwrap();
    let text = String::from_utf8(all).unwrap();
    let (first, second) = text
        .split_once("\r\n\r\nabc")
        .unwrap_or_else(|| panic!("first answer is not `abc`: {text:?}"));
    assert!(first.starts_with("HTTP/1.1 200 "), "{text:?}");
    assert!(second.starts_with("HTTP/1.1 200 "), "{text:?}");
    assert!(second.contains("\r\nConnection: close\r\n"), "{text:?}");
    assert!(
        second.ends_with("\r\n\r\n[\"k\"]"),
        "closed right after: {text:?}"
    );
}

#[test]
fn missing_or_wrong_token_is_401() {
    let engine = start(&[("WB_PUBLIC_BEARER", "right-token")]);
    let cases: [(&str, Option<&str>); 4] = [
        ("/health", None),
        ("/health", Some("wrong-token")),
        ("/health", Some("right-toke")),
        ("/workbooks", Some("right-token-")),
    ];
    for (path, token) in cases {
        let resp = http(engine.port, "GET", path, token, None);
        assert_eq!(resp.status, 401, "{path} with {token:?}");
        assert_eq!(resp.header("WWW-Authenticate"), Some("Bearer"));
        assert_eq!(resp.text(), "unauthorized\n");
    }
    // Auth comes before routing and before the body is looked at.
    let resp = http(engine.port, "PUT", "/workbooks/x", None, Some(b"data"));
    assert_eq!(resp.status, 401);
    let resp = http(engine.port, "GET", "/nowhere", None, None);
    assert_eq!(resp.status, 401);
    // Another scheme carrying the right secret is still refused.
    let head = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic right-token\r\n";
    assert_eq!(raw(engine.port, head.as_bytes(), b"").status, 401);
    // The scheme name is case-insensitive.
    let head = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: bearer right-token\r\n";
    assert_eq!(raw(engine.port, head.as_bytes(), b"").status, 200);
    // Nothing was stored by the refused PUT.
    assert_eq!(engine.call("GET", "/workbooks/x", None).status, 404);
}

#[test]
fn given_token_is_used_and_runtime_json_is_right() {
    let mut engine = start(&[("WB_PUBLIC_BEARER", "s3cret-given")]);
    assert_eq!(engine.token, "s3cret-given");
    let text = fs::read_to_string(engine.runtime_path()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["pid"].as_u64(), Some(u64::from(engine.pid)));
    assert_ne!(engine.port, 0, "the bound port, not the requested 0");
    let mode = fs::metadata(engine.runtime_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Only runtime.json is left in the discovery dir (the temp file was renamed).
    let entries: Vec<_> = fs::read_dir(&engine.disco)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries, vec!["runtime.json"]);
    assert_eq!(
        http(engine.port, "GET", "/health", Some("s3cret-given"), None).status,
        200
    );
    engine.stop();
    let log = engine.stderr();
    assert!(
        !log.contains("s3cret-given"),
        "token leaked into the log:\n{log}"
    );
    assert!(log.contains(&format!("wb-engine listening on 127.0.0.1:{}", engine.port)));
    assert!(
        log.contains("WB_PUBLIC_BEARER"),
        "names of WB_* variables are logged"
    );
}

#[test]
fn token_is_generated_when_unset_or_empty() {
    let a = start(&[]);
    let b = start(&[("WB_PUBLIC_BEARER", "")]);
    for engine in [&a, &b] {
        assert_eq!(engine.token.len(), 64, "{:?}", engine.token);
        assert!(
            engine
                .token
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
            "{:?}",
            engine.token
        );
        assert_eq!(engine.call("GET", "/health", None).status, 200);
        assert!(!engine.stderr().contains(&engine.token));
    }
    assert_ne!(a.token, b.token);
    assert_eq!(
        http(a.port, "GET", "/health", Some(&b.token), None).status,
        401
    );
}

#[test]
fn put_get_list_round_trip() {
    let engine = start(&[]);
    assert_eq!(
        names(&engine.call("GET", "/workbooks", None)),
        Vec::<String>::new()
    );

    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend_from_slice(b"\r\nline two\n\n\0\r\n\r\nend");
    let put = engine.call("PUT", "/workbooks/book.wb", Some(&bytes));
    assert_eq!(put.status, 201);
    assert!(put.body.is_empty());

    let got = engine.call("GET", "/workbooks/book.wb", None);
    assert_eq!(got.status, 200);
    assert_eq!(got.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(got.body, bytes);

    let replaced: Vec<u8> = bytes.iter().rev().copied().collect();
    let put = engine.call("PUT", "/workbooks/book.wb", Some(&replaced));
    assert_eq!(put.status, 204);
    assert!(put.body.is_empty());
    assert_eq!(
        engine.call("GET", "/workbooks/book.wb", None).body,
        replaced
    );

    // An empty workbook is a workbook.
    assert_eq!(
        engine.call("PUT", "/workbooks/empty", Some(b"")).status,
        201
    );
    let got = engine.call("GET", "/workbooks/empty", None);
    assert_eq!((got.status, got.body.len()), (200, 0));

    // A body larger than tiny_http's default chunking threshold.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(engine.call("PUT", "/workbooks/big", Some(&big)).status, 201);
    assert_eq!(engine.call("GET", "/workbooks/big", None).body, big);

    let missing = engine.call("GET", "/workbooks/missing", None);
    assert_eq!(missing.status, 404);

    for name in ["zeta", "Alpha", "alpha", "b-2", "_x", "9"] {
        assert_eq!(
            engine
                .call("PUT", &format!("/workbooks/{name}"), Some(name.as_bytes()))
                .status,
            201
        );
    }
    assert_eq!(
        names(&engine.call("GET", "/workbooks", None)),
        [
            "9", "Alpha", "_x", "alpha", "b-2", "big", "book.wb", "empty", "zeta"
        ]
    );
}

#[test]
fn delete_removes_and_then_404s() {
    let engine = start(&[]);
    assert_eq!(
        engine.call("PUT", "/workbooks/gone", Some(b"x")).status,
        201
    );
    let del = engine.call("DELETE", "/workbooks/gone", None);
    assert_eq!(del.status, 204);
    assert_eq!(engine.call("DELETE", "/workbooks/gone", None).status, 404);
    assert_eq!(engine.call("GET", "/workbooks/gone", None).status, 404);
    assert_eq!(
        names(&engine.call("GET", "/workbooks", None)),
        Vec::<String>::new()
    );
}

#[test]
fn bad_names_are_400() {
    let engine = start(&[]);
    let long = "x".repeat(129);
    for name in [
        ".",
        "..",
        "a%2Fb",
        "a/b",
        "a%20b",
        "caf%C3%A9",
        "",
        long.as_str(),
        "a:b",
    ] {
        let resp = engine.call("PUT", &format!("/workbooks/{name}"), Some(b"x"));
        assert_eq!(resp.status, 400, "PUT {name:?}");
        let resp = engine.call("GET", &format!("/workbooks/{name}"), None);
        assert_eq!(resp.status, 400, "GET {name:?}");
    }
    // The edges that are fine.
    for name in [
        "x".repeat(128),
        "...".into(),
        ".hidden".into(),
        "A-z_0.9".into(),
    ] {
        let resp = engine.call("PUT", &format!("/workbooks/{name}"), Some(b"x"));
        assert_eq!(resp.status, 201, "PUT {name:?}");
    }
    assert_eq!(names(&engine.call("GET", "/workbooks", None)).len(), 4);
}

#[test]
fn unknown_routes_404_and_wrong_methods_405() {
    let engine = start(&[]);
    for path in ["/", "/nope", "/health/x", "/workbooksx", "/Workbooks/a"] {
        assert_eq!(engine.call("GET", path, None).status, 404, "{path}");
    }
    let resp = engine.call("POST", "/health", Some(b""));
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("Allow"), Some("GET, HEAD"));
    assert_eq!(engine.call("DELETE", "/workbooks", None).status, 405);
    let resp = engine.call("POST", "/workbooks/a", Some(b"x"));
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("Allow"), Some("GET, HEAD, PUT, DELETE"));
    // A query string does not change the route.
    assert_eq!(engine.call("GET", "/health?probe=1", None).status, 200);
}

#[test]
fn body_limit_is_16_mib() {
    let engine = start(&[]);
    const LIMIT: usize = 16 * 1024 * 1024;
    // Declared too large: refused from the header, before any body is sent.
    let head = format!(
        "PUT /workbooks/huge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n",
        engine.token,
        LIMIT + 1
    );
    assert_eq!(raw(engine.port, head.as_bytes(), b"").status, 413);
    // Exactly the limit is accepted and comes back intact.
    let mut body = vec![7u8; LIMIT];
    body[LIMIT - 1] = 9;
    assert_eq!(
        engine.call("PUT", "/workbooks/max", Some(&body)).status,
        201
    );
    assert_eq!(engine.call("GET", "/workbooks/max", None).body, body);
    // One byte over is refused, sent for real with chunked encoding.
    body.push(1);
    let head = format!(
        "PUT /workbooks/over HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n",
        engine.token
    );
    let mut chunked = Vec::new();
    for piece in body.chunks(1 << 20) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(raw(engine.port, head.as_bytes(), &chunked).status, 413);
    assert_eq!(names(&engine.call("GET", "/workbooks", None)), ["max"]);
    // The engine still serves after both refusals.
    assert_eq!(engine.call("GET", "/health", None).status, 200);
}

#[test]
fn a_stalled_upload_does_not_block_other_requests() {
    let engine = start(&[]);
    // Declares a body and never sends it.
    let mut stalled = TcpStream::connect(("127.0.0.1", engine.port)).unwrap();
    let head = format!(
        "PUT /workbooks/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\nabc",
        engine.token
    );
    stalled.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    assert_eq!(engine.call("GET", "/health", None).status, 200);
    assert_eq!(
        engine.call("PUT", "/workbooks/fast", Some(b"x")).status,
        201
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // The stalled upload was not stored.
    assert_eq!(names(&engine.call("GET", "/workbooks", None)), ["fast"]);
}

#[test]
fn requests_are_logged_without_token_or_body() {
    let mut engine = start(&[("WB_PUBLIC_BEARER", "log-secret-token")]);
    engine.call("PUT", "/workbooks/logged", Some(b"BODY-MARKER-123"));
    engine.call("GET", "/workbooks/logged", None);
    http(engine.port, "GET", "/health", None, None);
    engine.stop();
    let log = engine.stderr();
    assert!(log.contains("PUT /workbooks/logged 201"), "{log}");
    assert!(log.contains("GET /workbooks/logged 200"), "{log}");
    assert!(log.contains("GET /health 401"), "{log}");
    assert!(!log.contains("log-secret-token"), "{log}");
    assert!(!log.contains("BODY-MARKER-123"), "{log}");
}

#[test]
fn data_survives_restart_with_a_registry_file() {
    let dir = TempDir::new().unwrap();
    let registry = dir.path().join("sub").join("registry.sqlite");
    let registry = registry.to_str().unwrap();
    let bytes = b"persisted\n\0\xffbytes".to_vec();

    let mut first = start(&[("WB_REGISTRY", registry)]);
    assert_eq!(
        first.call("PUT", "/workbooks/keep", Some(&bytes)).status,
        201
    );
    first.stop();
    assert!(Path::new(registry).is_file());

    let second = start(&[("WB_REGISTRY", registry)]);
    let got = second.call("GET", "/workbooks/keep", None);
    assert_eq!(got.status, 200);
    assert_eq!(got.body, bytes);
    assert_eq!(names(&second.call("GET", "/workbooks", None)), ["keep"]);
    // Still the same workbook, so a second PUT replaces it.
    assert_eq!(
        second.call("PUT", "/workbooks/keep", Some(b"v2")).status,
        204
    );
}

#[test]
fn memory_registry_does_not_survive_restart() {
    let mut first = start(&[]);
    assert_eq!(
        first.call("PUT", "/workbooks/fleeting", Some(b"x")).status,
        201
    );
    assert_eq!(first.call("GET", "/workbooks/fleeting", None).status, 200);
    first.stop();

    let second = start(&[("WB_REGISTRY", ":memory:")]);
    assert_eq!(second.call("GET", "/workbooks/fleeting", None).status, 404);
    assert_eq!(
        names(&second.call("GET", "/workbooks", None)),
        Vec::<String>::new()
    );
}

fn assert_signal_stops_cleanly(signal: libc::c_int, name: &str) {
    let mut engine = start(&[]);
    assert!(engine.runtime_path().exists());
    // An idle keep-alive connection must not hold up shutdown.
    let _idle = TcpStream::connect(("127.0.0.1", engine.port)).unwrap();
    let sent = Instant::now();
    engine.signal(signal);
    let status = engine.wait_exit(Duration::from_secs(2));
    let elapsed = sent.elapsed();
    let status = status.unwrap_or_else(|| panic!("still running 2 s after {name}"));
    assert_eq!(
        status.code(),
        Some(0),
        "{name}: {status}; stderr:\n{}",
        engine.stderr()
    );
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(
        !engine.runtime_path().exists(),
        "runtime.json left after {name}"
    );
    let log = engine.stderr();
    assert!(log.contains(&format!("{name} received")), "{log}");
    assert!(log.contains("wb-engine stopped"), "{log}");
}

#[test]
fn sigterm_exits_0_promptly_and_removes_runtime_json() {
    assert_signal_stops_cleanly(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_exits_0_promptly_and_removes_runtime_json() {
    assert_signal_stops_cleanly(libc::SIGINT, "SIGINT");
}

#[test]
fn without_web_mode_exits_2() {
    for vars in [&[][..], &[("WB_WEB", "0")][..], &[("WB_WEB", "true")][..]] {
        let dir = TempDir::new().unwrap();
        let disco = dir.path().join("disco");
        let (status, stderr) = run_to_exit(vars, &disco);
        assert_eq!(status.code(), Some(2), "{vars:?}");
        assert_eq!(
            stderr.trim_end(),
            "wb-engine: only web mode is implemented — set WB_WEB=1",
            "{vars:?}"
        );
        assert!(!disco.join("runtime.json").exists());
    }
}

#[test]
fn invalid_port_exits_2() {
    for port in ["http", "65536", "-1", ""] {
        let dir = TempDir::new().unwrap();
        let disco = dir.path().join("disco");
        let (status, stderr) = run_to_exit(&[("WB_WEB", "1"), ("PORT", port)], &disco);
        assert_eq!(status.code(), Some(2), "PORT={port:?}: {stderr}");
        assert!(stderr.contains("invalid PORT"), "{stderr}");
        assert!(!disco.join("runtime.json").exists());
    }
}

#[test]
fn missing_directories_are_created() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("a").join("data");
    let disco = dir.path().join("b").join("disco");
    let mut engine = start(&[
        ("WB_DATA", data.to_str().unwrap()),
        ("WB_DISCO", disco.to_str().unwrap()),
    ]);
    assert!(data.is_dir());
    assert!(disco.join("runtime.json").is_file());
    assert_eq!(engine.call("GET", "/health", None).status, 200);
    engine.stop();
    assert!(!disco.join("runtime.json").exists());
}
