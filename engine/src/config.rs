//! Reading the engine's environment: `WB_WEB`, `PORT`, `WB_BIND`, `WB_DATA`,
//! `WB_REGISTRY`, `WB_DATABASE_URL`, `WB_PUBLIC_BEARER`, `WB_DISCO` and the
//! `WB_HTTP_*` limits. Everything else is ignored.

use std::env;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::server::Limits;

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
    /// `WB_DATABASE_URL`, parsed: when set, the registry is in PostgreSQL and
    /// `registry` is ignored.
    pub database: Option<Database>,
    pub token: String,
    pub token_source: TokenSource,
    pub disco: PathBuf,
    pub limits: Limits,
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

pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
pub const DEFAULT_IDLE_TIMEOUT_MS: usize = 10_000;
pub const DEFAULT_BODY_TIMEOUT_MS: usize = 30_000;
pub const DEFAULT_UPLOAD_BUDGET_MIB: usize = 64;
pub const DEFAULT_GIVE_UP_MS: usize = 60_000;

/// An integer setting within `range`, `default` when unset or empty.
pub fn parse_limit(
    name: &str,
    raw: Option<&str>,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ConfigError> {
    match raw.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ConfigError::new(format!(
                    "wb-engine: invalid {name} {text:?}: expected an integer from {} to {} (default {default})",
                    range.start(),
                    range.end()
                ))
            }),
    }
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
        let database = non_empty(var("WB_DATABASE_URL")?)
            .map(|dsn| Database::parse(&dsn))
            .transpose()?;
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
        let limits = Limits {
            max_connections: parse_limit(
                "WB_HTTP_MAX_CONNECTIONS",
                var("WB_HTTP_MAX_CONNECTIONS")?.as_deref(),
                DEFAULT_MAX_CONNECTIONS,
                1..=65_536,
            )?,
            idle_timeout: Duration::from_millis(parse_limit(
                "WB_HTTP_IDLE_TIMEOUT_MS",
                var("WB_HTTP_IDLE_TIMEOUT_MS")?.as_deref(),
                DEFAULT_IDLE_TIMEOUT_MS,
                1..=3_600_000,
            )? as u64),
            body_timeout: Duration::from_millis(parse_limit(
                "WB_HTTP_BODY_TIMEOUT_MS",
                var("WB_HTTP_BODY_TIMEOUT_MS")?.as_deref(),
                DEFAULT_BODY_TIMEOUT_MS,
                1..=3_600_000,
            )? as u64),
            // At least one largest workbook must fit, or it could never be stored.
            upload_budget: parse_limit(
                "WB_HTTP_UPLOAD_BUDGET_MIB",
                var("WB_HTTP_UPLOAD_BUDGET_MIB")?.as_deref(),
                DEFAULT_UPLOAD_BUDGET_MIB,
                16..=65_536,
            )? << 20,
            give_up: Duration::from_millis(parse_limit(
                "WB_HTTP_GIVE_UP_MS",
                var("WB_HTTP_GIVE_UP_MS")?.as_deref(),
                DEFAULT_GIVE_UP_MS,
                100..=3_600_000,
            )? as u64),
        };
        Ok(Config {
            limits,
            port,
            bind,
            data: data.into(),
            registry,
            database,
            token,
            token_source,
            disco: disco.into(),
        })
    }
}

/// A PostgreSQL registry's connection settings. Holds the password, so it
/// has no `Debug`/`Display` of its own; messages go through [`Database::redact`].
pub struct Database {
    pub config: postgres::Config,
    /// Every string that must never reach a log: the DSN itself and its
    /// password in each spelling it may appear in.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Database(<redacted>)")
    }
}

impl Database {
    /// Parses `WB_DATABASE_URL` (URL or libpq key=value form) and refuses
    /// what this engine cannot honour. No message ever contains the DSN.
    pub fn parse(dsn: &str) -> Result<Database, ConfigError> {
        let mut secrets = vec![dsn.to_owned()];
        secrets.extend(raw_passwords(dsn));
        let parsed = dsn.parse::<postgres::Config>();
        if let Ok(config) = &parsed
            && let Some(password) = config.get_password()
        {
            secrets.push(String::from_utf8_lossy(password).into_owned());
        }
        // Longest first, so a password containing another candidate is
        // replaced whole.
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        let redactor = Database {
            config: postgres::Config::new(),
            secrets,
        };
        let config = match parsed {
            Ok(config) => config,
            Err(e) => {
                let hint = if dsn.contains("sslmode=verify") {
                    format!(" — {NO_TLS}")
                } else {
                    " — expected postgres://USER:PASSWORD@HOST:PORT/DB, \
                     postgres://USER@/DB?host=/socket/dir, or key=value pairs \
                     (host=/socket/dir dbname=DB user=USER)"
                        .to_owned()
                };
                return Err(ConfigError::new(format!(
                    "wb-engine: WB_DATABASE_URL is not a PostgreSQL connection string: {}{hint}",
                    redactor.redact(&crate::store::chain(&e))
                )));
            }
        };
        if config.get_ssl_mode() == postgres::config::SslMode::Require {
            return Err(ConfigError::new(format!(
                "wb-engine: WB_DATABASE_URL asks for sslmode=require — {NO_TLS}"
            )));
        }
        // The driver's default user is the OS user's name, which a
        // FROM-scratch image cannot look up (no passwd): ask for it instead
        // of failing later with "No such file or directory".
        if config.get_user().is_none_or(str::is_empty) {
            return Err(ConfigError::new(
                "wb-engine: WB_DATABASE_URL names no user — give one \
                 (postgres://USER@HOST/DB, or user=USER in key=value form)",
            ));
        }
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            return Err(ConfigError::new(
                "wb-engine: WB_DATABASE_URL names no host — give one (postgres://USER@HOST/DB) \
                 or a unix-socket directory (postgres://USER@/DB?host=/run/postgresql)",
            ));
        }
        Ok(Database { config, ..redactor })
    }

    /// `message` with every secret of the DSN replaced by `<redacted>`.
    pub fn redact(&self, message: &str) -> String {
        let mut out = message.to_owned();
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), "<redacted>");
        }
        out
    }
}

const NO_TLS: &str = "this engine speaks PostgreSQL without TLS (plain TCP or a unix socket); \
    reach the database over a private network or a unix-socket directory and use \
    sslmode=disable or sslmode=prefer";

/// Password candidates read straight from the text, for redacting a DSN the
/// driver could not parse: the userinfo of a URL (raw and percent-decoded)
/// and any `password=` value (in a URL query or key=value form).
fn raw_passwords(dsn: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(rest) = dsn
        .strip_prefix("postgres://")
        .or_else(|| dsn.strip_prefix("postgresql://"))
        && let Some(at) = rest.rfind('@')
        && let Some((_, password)) = rest[..at].split_once(':')
    {
        found.push(password.to_owned());
        found.push(percent_decode(password));
    }
    let mut rest = dsn;
    while let Some(i) = rest.find("password=") {
        rest = &rest[i + "password=".len()..];
        let value = match rest.strip_prefix('\'') {
            // Quoted key=value: up to the closing quote (escapes kept).
            Some(quoted) => quoted.split('\'').next().unwrap_or(""),
            None => rest.split([' ', '&', '#']).next().unwrap_or(""),
        };
        found.push(value.to_owned());
        found.push(value.replace("\\'", "'").replace("\\\\", "\\"));
        found.push(percent_decode(value));
    }
    found
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
    fn limits_parse() {
        let range = 16..=65_536;
        assert_eq!(parse_limit("X", None, 64, range.clone()).unwrap(), 64);
        assert_eq!(parse_limit("X", Some(""), 64, range.clone()).unwrap(), 64);
        assert_eq!(parse_limit("X", Some("16"), 64, range.clone()).unwrap(), 16);
        for bad in ["15", "65537", "-1", "1e3", "ten"] {
            let err = parse_limit("WB_X", Some(bad), 64, range.clone()).unwrap_err();
            assert_eq!(err.code, 2);
            assert!(err.message.contains("invalid WB_X"), "{}", err.message);
        }
    }

    #[test]
    fn database_urls_parse_and_redact() {
        for dsn in [
            "postgres://wb:pw-1@127.0.0.1:5432/wb",
            "postgres://wb@/wb?host=/run/postgresql&password=pw-1",
            "postgres://wb:pw%2D1@%2Frun%2Fpostgresql/wb",
            "host=/run/postgresql user=wb password='pw-1' dbname=wb",
            "host=127.0.0.1 user=wb password=pw-1 sslmode=disable",
        ] {
            let db = Database::parse(dsn).unwrap_or_else(|e| panic!("{dsn}: {}", e.message));
            assert_eq!(db.config.get_password(), Some(&b"pw-1"[..]), "{dsn}");
            assert_eq!(
                db.redact(&format!("failed for pw-1 via {dsn}")),
                "failed for <redacted> via <redacted>"
            );
        }
        let db = Database::parse("postgres://wb@/wb?host=/tmp/sock%20dir").unwrap();
        assert!(matches!(
            db.config.get_hosts(),
            [postgres::config::Host::Unix(p)] if p.to_str() == Some("/tmp/sock dir")
        ));
    }

    #[test]
    fn bad_database_urls_are_refused_without_the_password() {
        for dsn in [
            "postgres://wb:Hunter2Secret@db:notaport/wb",
            "host=db password=Hunter2Secret port=x",
            "postgres://wb:Hunter2Secret@db/wb?sslmode=require",
            "host=db password='Hunter2Secret' sslmode=verify-full",
            "user=wb password=Hunter2Secret",
            "host=db password=Hunter2Secret dbname=wb",
        ] {
            let err = Database::parse(dsn)
                .err()
                .unwrap_or_else(|| panic!("{dsn} parsed"));
            assert_eq!(err.code, 2);
            assert!(!err.message.contains("Hunter2Secret"), "{}", err.message);
            assert!(err.message.contains("WB_DATABASE_URL"), "{}", err.message);
        }
        let err = Database::parse("postgres://wb:Hunter2Secret@db/wb?sslmode=require")
            .err()
            .unwrap();
        assert!(err.message.contains("without TLS"), "{}", err.message);
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
