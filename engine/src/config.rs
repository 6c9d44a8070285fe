//! Reading the engine's environment: `WB_WEB`, `PORT`, `WB_BIND`, `WB_DATA`,
//! `WB_REGISTRY`, `WB_PUBLIC_BEARER`, `WB_DISCO`. Everything else is ignored.

use std::env;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

/// Exit code for a configuration the engine refuses to start with.
pub const EXIT_CONFIG: i32 = 2;

pub const DEFAULT_PORT: u16 = 4000;
pub const DEFAULT_BIND: &str = "0.0.0.0";
pub const DEFAULT_DATA: &str = "/data";
pub const DEFAULT_DISCO: &str = "/disco";

/// Where the bearer token came from (logged, the token itself never is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Given,
    Generated,
}

#[derive(Debug)]
pub struct Config {
    pub port: u16,
    pub bind: IpAddr,
    pub data: PathBuf,
    /// `None` means an in-memory registry that dies with the process.
    pub registry: Option<PathBuf>,
    pub token: String,
    pub token_source: TokenSource,
    pub disco: PathBuf,
}

/// A refusal to start: the message for stderr and the exit code.
#[derive(Debug)]
pub struct ConfigError {
    pub message: String,
    pub code: i32,
}

impl ConfigError {
    fn new(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
            code: EXIT_CONFIG,
        }
    }
}

/// A variable's value as UTF-8, `None` when unset; non-UTF-8 is an error.
fn var(name: &str) -> Result<Option<String>, ConfigError> {
    match env::var_os(name) {
        None => Ok(None),
        Some(value) => value
            .into_string()
            .map(Some)
            .map_err(|_| ConfigError::new(format!("wb-engine: {name} is not valid UTF-8"))),
    }
}

/// The names (never the values) of the `WB_*` variables present, sorted.
pub fn wb_names() -> Vec<String> {
    let mut names: Vec<String> = env::vars_os()
        .map(|(name, _): (OsString, OsString)| name.to_string_lossy().into_owned())
        .filter(|name| name.starts_with("WB_"))
        .collect();
    names.sort();
    names
}

pub fn parse_port(raw: Option<&str>) -> Result<u16, ConfigError> {
    match raw {
        None => Ok(DEFAULT_PORT),
        Some(text) => text.trim().parse::<u16>().map_err(|_| {
            ConfigError::new(format!(
                "wb-engine: invalid PORT {text:?}: expected an integer from 0 to 65535 (0 picks a free port)"
            ))
        }),
    }
}

pub fn parse_bind(raw: Option<&str>) -> Result<IpAddr, ConfigError> {
    let text = raw.unwrap_or(DEFAULT_BIND).trim();
    // Accept "[::1]" as well as "::1".
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>().map_err(|_| {
        ConfigError::new(format!(
            "wb-engine: invalid WB_BIND {text:?}: expected an IP address such as 0.0.0.0 or 127.0.0.1"
        ))
    })
}

/// 32 random bytes from the operating system, hex-encoded (64 characters).
pub fn generate_token() -> Result<String, ConfigError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ConfigError {
        message: format!("wb-engine: cannot get random bytes for the token: {e}"),
        code: 1,
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        if var("WB_WEB")?.as_deref() != Some("1") {
            return Err(ConfigError::new(
                "wb-engine: only web mode is implemented — set WB_WEB=1",
            ));
        }
        let port = parse_port(var("PORT")?.as_deref())?;
        let bind = parse_bind(var("WB_BIND")?.as_deref())?;
        let data = non_empty(var("WB_DATA")?).unwrap_or_else(|| DEFAULT_DATA.into());
        let disco = non_empty(var("WB_DISCO")?).unwrap_or_else(|| DEFAULT_DISCO.into());
        let registry = non_empty(var("WB_REGISTRY")?)
            .filter(|r| r != ":memory:")
            .map(PathBuf::from);
        let (token, token_source) = match non_empty(var("WB_PUBLIC_BEARER")?) {
            Some(token) => {
                if token.bytes().any(|b| b.is_ascii_control()) {
                    return Err(ConfigError::new(
                        "wb-engine: WB_PUBLIC_BEARER must not contain control characters",
                    ));
                }
                (token, TokenSource::Given)
            }
            None => (generate_token()?, TokenSource::Generated),
        };
        Ok(Config {
            port,
            bind,
            data: data.into(),
            registry,
            token,
            token_source,
            disco: disco.into(),
        })
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_defaults_and_parses() {
        assert_eq!(parse_port(None).unwrap(), 4000);
        assert_eq!(parse_port(Some("0")).unwrap(), 0);
        assert_eq!(parse_port(Some("8080")).unwrap(), 8080);
        assert_eq!(parse_port(Some("65536")).unwrap_err().code, 2);
        assert_eq!(parse_port(Some("http")).unwrap_err().code, 2);
        assert_eq!(parse_port(Some("")).unwrap_err().code, 2);
        assert_eq!(parse_port(Some("-1")).unwrap_err().code, 2);
    }

    #[test]
    fn bind_parses() {
        assert_eq!(parse_bind(None).unwrap().to_string(), "0.0.0.0");
        assert_eq!(
            parse_bind(Some("127.0.0.1")).unwrap().to_string(),
            "127.0.0.1"
        );
        assert_eq!(parse_bind(Some("[::1]")).unwrap().to_string(), "::1");
        assert_eq!(parse_bind(Some("localhost")).unwrap_err().code, 2);
    }

    #[test]
    fn generated_token_is_64_hex() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }
}
