//! Discovery and health: the engine's discovery file (SPEC §9.2), `GET /health` with its
//! token, and the engine log's last lines for a failure message.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::backend::{Backend, Instance, Spec};
use super::http;
use crate::core::secret::Secret;

/// Log lines shown with a failure.
pub const TAIL: usize = 15;

/// The engine's discovery file.
pub struct Runtime {
    pub port: u16,
    pub pid: Option<u32>,
    pub token: Secret,
}

pub fn read_runtime(path: &Path) -> Option<Runtime> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    Some(Runtime {
        port: u16::try_from(v.get("port")?.as_u64()?).ok()?,
        pid: v
            .get("pid")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok()),
        token: Secret::new(v.get("token")?.as_str()?),
    })
}

/// `GET /health` with the token: `Ok` on 200 with `ok` in the body, else which way it
/// failed, in words.
pub fn check_health(
    port: u16,
    token: &Secret,
    timeout: Duration,
    discovery: &Path,
) -> Result<(), String> {
    use self::http::HttpError;
    match http::get(port, "/health", token.expose(), timeout) {
        Err(HttpError::Refused) => Err(format!("nothing listening on 127.0.0.1:{port}")),
        Err(HttpError::Timeout) => Err(format!(
            "timeout — no answer from 127.0.0.1:{port} within {} s",
            timeout.as_secs_f32()
        )),
        Err(HttpError::Other(e)) => Err(format!("the request to 127.0.0.1:{port} failed: {e}")),
        Ok(r) if r.status == 401 => Err(format!(
            "401 unauthorized — token mismatch: the token in {} is not the engine's",
            discovery.display()
        )),
        Ok(r) if r.status != 200 => Err(format!("/health answered {} (expected 200)", r.status)),
        Ok(r) if !String::from_utf8_lossy(&r.body).contains("ok") => {
            Err("/health answered 200 but the body has no `ok`".into())
        }
        Ok(_) => Ok(()),
    }
}

pub fn log_tail(backend: &dyn Backend, spec: &Spec, inst: &Instance) -> String {
    indent_log(backend.logs(spec, inst, Some(TAIL)))
}

pub fn indent_log(log: Result<String, String>) -> String {
    match log {
        Ok(text) if text.trim().is_empty() => "  (the engine log is empty)".into(),
        Ok(text) => text.lines().map(|l| format!("  {l}\n")).collect::<String>(),
        Err(e) => format!("  (no engine log: {e})"),
    }
}

pub fn with_tail(message: &str, backend: &dyn Backend, spec: &Spec, inst: &Instance) -> String {
    format!(
        "{message}\nlast lines of the engine log:\n{}",
        log_tail(backend, spec, inst).trim_end()
    )
}

/// The log of an engine that just exited: a container's log can land a moment after
/// its state says exited, so an empty answer is asked again for up to 2 s.
pub fn last_words(backend: &dyn Backend, spec: &Spec, inst: &Instance) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let log = backend.logs(spec, inst, Some(TAIL));
        let empty = log.as_ref().is_ok_and(|t| t.trim().is_empty());
        if !empty || Instant::now() >= deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-shot server answering `raw` to the first request.
    fn serve(raw: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(raw.as_bytes());
            }
        });
        port
    }

    fn health(port: u16) -> Result<(), String> {
        check_health(
            port,
            &Secret::new("t"),
            Duration::from_secs(2),
            Path::new("/d/runtime.json"),
        )
    }

    #[test]
    fn health_says_which_way_it_failed() {
        let ok = serve("HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}");
        assert_eq!(health(ok), Ok(()));
        let unauthorized =
            serve("HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\n\r\nunauthorized");
        let e = health(unauthorized).unwrap_err();
        assert!(
            e.contains("401") && e.contains("token mismatch") && e.contains("/d/runtime.json"),
            "{e}"
        );
        let other = serve("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
        assert!(health(other).unwrap_err().contains("answered 503"));
        let no_ok = serve("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnope");
        assert!(health(no_ok).unwrap_err().contains("body has no `ok`"));
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(health(closed).unwrap_err().contains("nothing listening"));
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let e = check_health(
            silent.local_addr().unwrap().port(),
            &Secret::new("t"),
            Duration::from_millis(300),
            Path::new("/d"),
        )
        .unwrap_err();
        assert!(e.starts_with("timeout"), "{e}");
    }

    #[test]
    fn runtime_json_is_read_and_the_token_stays_redacted() {
        let dir = std::path::PathBuf::from(format!("/tmp/wb-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("runtime.json");
        std::fs::write(&path, "{\"port\": 4000, \"pid\": 1, \"token\": \"abc\"}\n").unwrap();
        let rt = read_runtime(&path).unwrap();
        assert_eq!((rt.port, rt.pid), (4000, Some(1)));
        assert_eq!(rt.token.expose(), "abc");
        assert_eq!(format!("{:?}", rt.token), "<redacted>");
        std::fs::write(&path, "{\"port\": 4000").unwrap();
        assert!(
            read_runtime(&path).is_none(),
            "a half-written file is not discovery"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
