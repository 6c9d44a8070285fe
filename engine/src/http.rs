//! Request handling: bearer auth, routing, the workbook API. The HTTP
//! plumbing itself is in server.rs.

use std::sync::Mutex;

use crate::server::{Body, BodyError, Reply, Request};
use crate::store::{Put, Store};

/// Largest accepted workbook body.
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;

pub struct Ctx {
    pub token: String,
    pub store: Mutex<Store>,
}

impl Reply {
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
        .header_values("Authorization")
        .filter_map(bearer_token)
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

/// Answers one request.
pub fn handle(request: &Request, body: &mut Body<'_, '_>, ctx: &Ctx) -> Reply {
    let method = request.method.as_str();
    let path = request.path();
    // The one unauthenticated path, for platform probes (Fly checks,
    // Kubernetes probes) that cannot carry the bearer. It says only that the
    // process serves HTTP: no registry check, no detail to leak.
    if path == "/livez" {
        return match method {
            "GET" | "HEAD" => Reply::text_exact(200, "ok"),
            _ => Reply::method_not_allowed("GET, HEAD"),
        };
    }
    if !authorized(request, &ctx.token) {
        return Reply::unauthorized();
    }
    match path {
        "/health" => match method {
            "GET" | "HEAD" => Reply::json(200, r#"{"status":"ok"}"#.to_owned()),
            _ => Reply::method_not_allowed("GET, HEAD"),
        },
        "/workbooks" => match method {
            "GET" | "HEAD" => list(ctx),
            _ => Reply::method_not_allowed("GET, HEAD"),
        },
        _ => match path.strip_prefix("/workbooks/") {
            Some(name) => {
                if !matches!(method, "GET" | "HEAD" | "PUT" | "DELETE") {
                    return Reply::method_not_allowed("GET, HEAD, PUT, DELETE");
                }
                if !valid_name(name) {
                    return Reply::text(
                        400,
                        "bad workbook name: use 1 to 128 of A-Z a-z 0-9 . _ - (not . or ..)",
                    );
                }
                match method {
                    "PUT" => put(body, name, ctx),
                    "DELETE" => delete(name, ctx),
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

fn put(body: &mut Body<'_, '_>, name: &str, ctx: &Ctx) -> Reply {
    // The body is read before the registry lock is taken (a slow upload
    // must not hold up other requests), under the server's upload budget;
    // the permit is kept until the bytes are stored.
    let (bytes, permit) = match body.read_to_vec(BODY_LIMIT) {
        Ok(read) => read,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Busy) => {
            return Reply::text(
                503,
                "too many uploads in progress (WB_HTTP_UPLOAD_BUDGET_MIB); retry shortly",
            )
            .with_header("Retry-After", "1");
        }
        Err(BodyError::Timeout) => {
            return Reply::text(408, "the request body stalled (WB_HTTP_BODY_TIMEOUT_MS)");
        }
        Err(BodyError::Bad(message)) => return Reply::text(400, &message),
    };
    let stored = ctx
        .store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .put(name, &bytes);
    drop(bytes);
    drop(permit);
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
}
