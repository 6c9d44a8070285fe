//! Request handling: bearer auth, routing, the workbook API.

use std::io::{Cursor, Read};
use std::sync::Mutex;

use tiny_http::{Header, Method, Request, Response};

use crate::store::{Put, Store};

/// Largest accepted workbook body.
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;

pub struct Ctx {
    pub token: String,
    pub store: Mutex<Store>,
}

/// A response before it is handed to tiny_http.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Vec<u8>,
}

impl Reply {
    fn new(status: u16) -> Reply {
        Reply {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn text(status: u16, text: &str) -> Reply {
        Reply {
            content_type: Some("text/plain; charset=utf-8"),
            body: format!("{text}\n").into_bytes(),
            ..Reply::new(status)
        }
    }

    /// A text body without the trailing newline `text` adds.
    fn text_exact(status: u16, text: &str) -> Reply {
        Reply {
            content_type: Some("text/plain; charset=utf-8"),
            body: text.as_bytes().to_vec(),
            ..Reply::new(status)
        }
    }

    fn json(status: u16, body: String) -> Reply {
        Reply {
            content_type: Some("application/json"),
            body: body.into_bytes(),
            ..Reply::new(status)
        }
    }

    fn bytes(body: Vec<u8>) -> Reply {
        Reply {
            content_type: Some("application/octet-stream"),
            body,
            ..Reply::new(200)
        }
    }

    fn with_header(mut self, name: &'static str, value: &'static str) -> Reply {
        self.headers.push((name, value));
        self
    }

    fn unauthorized() -> Reply {
        Reply::text(401, "unauthorized").with_header("WWW-Authenticate", "Bearer")
    }

    fn method_not_allowed(allow: &'static str) -> Reply {
        Reply::text(405, "method not allowed").with_header("Allow", allow)
    }

    fn internal(context: &str, err: impl std::fmt::Display) -> Reply {
        eprintln!("wb-engine: {context}: {err}");
        Reply::text(500, "internal error")
    }

    fn into_response(self) -> Response<Cursor<Vec<u8>>> {
        let mut response = Response::from_data(self.body)
            .with_status_code(self.status)
            // Always send Content-Length: a workbook is in memory anyway.
            .with_chunked_threshold(usize::MAX);
        if let Some(ct) = self.content_type {
            response.add_header(header("Content-Type", ct));
        }
        for (name, value) in self.headers {
            response.add_header(header(name, value));
        }
        response
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}

/// Compares in time that depends only on the expected token's length.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, &e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(!e);
        diff |= std::hint::black_box(g ^ e);
    }
    diff == 0
}

/// The token of an `Authorization: Bearer <token>` value, if it is one.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_start())
}

fn authorized(request: &Request, token: &str) -> bool {
    request
        .headers()
        .iter()
        .filter(|h| h.field.equiv("Authorization"))
        .filter_map(|h| bearer_token(h.value.as_str()))
        .any(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

/// `[A-Za-z0-9._-]{1,128}`, and not `.` or `..`.
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name != "."
        && name != ".."
}

/// The path for routing and logging: no query string, no fragment.
fn route_path(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

/// A path made safe for a one-line log: printable ASCII only, bounded length.
fn loggable(path: &str) -> String {
    let mut out: String = path
        .chars()
        .take(200)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if path.chars().count() > 200 {
        out.push_str("...");
    }
    out
}

/// Handles one request end to end: route, respond, log.
pub fn handle(mut request: Request, ctx: &Ctx) {
    let method = request.method().clone();
    let path = route_path(request.url()).to_owned();
    let reply = route(&mut request, &method, &path, ctx);
    let status = reply.status;
    if let Err(e) = request.respond(reply.into_response()) {
        eprintln!(
            "wb-engine: {method} {} {status} (send failed: {e})",
            loggable(&path)
        );
    } else {
        eprintln!("wb-engine: {method} {} {status}", loggable(&path));
    }
}

fn route(request: &mut Request, method: &Method, path: &str, ctx: &Ctx) -> Reply {
    // The one unauthenticated path, for platform probes (Fly checks,
    // Kubernetes probes) that cannot carry the bearer. It says only that the
    // process serves HTTP: no registry check, no detail to leak.
    if path == "/livez" {
        return match method {
            Method::Get | Method::Head => Reply::text_exact(200, "ok"),
            _ => Reply::method_not_allowed("GET, HEAD"),
        };
    }
    if !authorized(request, &ctx.token) {
        return Reply::unauthorized();
    }
    match path {
        "/health" => match method {
            Method::Get | Method::Head => Reply::json(200, r#"{"status":"ok"}"#.to_owned()),
            _ => Reply::method_not_allowed("GET, HEAD"),
        },
        "/workbooks" => match method {
            Method::Get | Method::Head => list(ctx),
            _ => Reply::method_not_allowed("GET, HEAD"),
        },
        _ => match path.strip_prefix("/workbooks/") {
            Some(name) => {
                if !matches!(
                    method,
                    Method::Get | Method::Head | Method::Put | Method::Delete
                ) {
                    return Reply::method_not_allowed("GET, HEAD, PUT, DELETE");
                }
                if !valid_name(name) {
                    return Reply::text(
                        400,
                        "bad workbook name: use 1 to 128 of A-Z a-z 0-9 . _ - (not . or ..)",
                    );
                }
                match method {
                    Method::Put => put(request, name, ctx),
                    Method::Delete => delete(name, ctx),
                    _ => get(name, ctx),
                }
            }
            None => Reply::text(404, "not found"),
        },
    }
}

fn list(ctx: &Ctx) -> Reply {
    let names = ctx.store.lock().unwrap_or_else(|p| p.into_inner()).list();
    match names {
        Ok(names) => Reply::json(200, serde_json::Value::from(names).to_string()),
        Err(e) => Reply::internal("listing workbooks", e),
    }
}

fn get(name: &str, ctx: &Ctx) -> Reply {
    let found = ctx
        .store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(name);
    match found {
        Ok(Some(bytes)) => Reply::bytes(bytes),
        Ok(None) => Reply::text(404, "no such workbook"),
        Err(e) => Reply::internal("reading a workbook", e),
    }
}

fn delete(name: &str, ctx: &Ctx) -> Reply {
    let removed = ctx
        .store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .delete(name);
    match removed {
        Ok(true) => Reply::new(204),
        Ok(false) => Reply::text(404, "no such workbook"),
        Err(e) => Reply::internal("deleting a workbook", e),
    }
}

fn put(request: &mut Request, name: &str, ctx: &Ctx) -> Reply {
    let declared = request.body_length();
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        return too_large();
    }
    // Read the body before taking the registry lock: a slow upload must not
    // hold up other requests.
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    if let Err(e) = request
        .as_reader()
        .take(BODY_LIMIT as u64 + 1)
        .read_to_end(&mut body)
    {
        return Reply::text(400, &format!("cannot read the request body: {e}"));
    }
    if body.len() > BODY_LIMIT {
        return too_large();
    }
    if declared.is_some_and(|n| n != body.len()) {
        return Reply::text(400, "request body shorter than its Content-Length");
    }
    let stored = ctx
        .store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .put(name, &body);
    match stored {
        Ok(Put::Created) => Reply::new(201),
        Ok(Put::Replaced) => Reply::new(204),
        Err(e) => Reply::internal("storing a workbook", e),
    }
}

fn too_large() -> Reply {
    Reply::text(413, "workbook too large: the limit is 16 MiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("a"));
        assert!(valid_name("Book-1_v2.wb"));
        assert!(valid_name(&"x".repeat(128)));
        assert!(!valid_name(&"x".repeat(129)));
        assert!(!valid_name(""));
        assert!(!valid_name("."));
        assert!(!valid_name(".."));
        assert!(valid_name("..."));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("a%2Fb"));
        assert!(!valid_name("a b"));
        assert!(!valid_name("é"));
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret!", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }

    #[test]
    fn paths() {
        assert_eq!(route_path("/workbooks?x=1"), "/workbooks");
        assert_eq!(route_path("/health#x"), "/health");
        assert_eq!(loggable("/a\u{1b}b"), "/a?b");
    }
}
