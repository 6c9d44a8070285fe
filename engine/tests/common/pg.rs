//! A real, throwaway PostgreSQL server for the engine's tests: `initdb` and
//! `pg_ctl` from Debian's packages in a temp dir, listening on a unix socket
//! in that dir (trust) and on 127.0.0.1 (password, SCRAM), stopped on drop —
//! also when the test panics.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// The role the tests use, and its password for TCP connections.
pub const USER: &str = "wb";
pub const PASSWORD: &str = "pg-test-Pa55word";
pub const DB: &str = "wb";

pub struct Pg {
    /// Removed after the server stopped (fields drop after `Drop::drop`).
    dir: TempDir,
    bin: PathBuf,
    /// Where the server's unix socket lives: the `host=` of a socket DSN.
    pub socket_dir: PathBuf,
    /// The TCP port on 127.0.0.1, also the socket's number (`.s.PGSQL.<port>`).
    pub port: u16,
    /// Run the server's tools as this user (initdb refuses to run as root).
    as_postgres: bool,
}

/// `WB_REQUIRE_TOOLS=1` (CI) turns a missing PostgreSQL into a failure.
fn required() -> bool {
    std::env::var_os("WB_REQUIRE_TOOLS").is_some_and(|v| v == "1")
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`.
fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.split('.').next()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// The uid and gid of `name`, read from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

/// A port that was free a moment ago (the server binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Pg {
    /// Starts a server, or returns `None` after printing why the test is
    /// skipped — unless `WB_REQUIRE_TOOLS=1`, where that is a panic.
    pub fn start() -> Option<Pg> {
        let Some(bin) = find_bin() else {
            let why = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; \
                       apt-get install postgresql)";
            assert!(!required(), "WB_REQUIRE_TOOLS=1 and {why}");
            eprintln!("SKIPPED: {why}");
            return None;
        };
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new().prefix("wb-pg").tempdir().unwrap();
        let socket_dir = dir.path().join("sock");
        fs::create_dir(&socket_dir).unwrap();
        if root {
            let Some((uid, gid)) = user_ids("postgres") else {
                let why = "there is no `postgres` user to run the server as";
                assert!(!required(), "WB_REQUIRE_TOOLS=1 and {why}");
                eprintln!("SKIPPED: {why}");
                return None;
            };
            for path in [dir.path(), &socket_dir] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
            }
        }
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let mut pg = Pg {
            port: free_port(),
            socket_dir,
            bin,
            as_postgres: root,
            dir,
        };
        let data = pg.data();
        let pwfile = pg.dir.path().join("pwfile");
        fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
        if root {
            let (uid, gid) = user_ids("postgres").unwrap();
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();
        }
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                USER,
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        // The port was free a moment ago; another test may take it first
        // (the tests run in parallel), so a failed start tries another.
        let log = pg.dir.path().join("server.log");
        for attempt in 1..=3 {
            let options = format!(
                "-k {} -p {} -c listen_addresses=127.0.0.1 -c fsync=off",
                pg.socket_dir.display(),
                pg.port
            );
            let args = [
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ];
            if attempt == 3 {
                pg.run("pg_ctl", &args);
                break;
            }
            if pg.try_run("pg_ctl", &args).status.success() {
                break;
            }
            pg.port = free_port();
        }
        pg.run(
            "createdb",
            &[
                "-h",
                pg.socket_dir.to_str().unwrap(),
                "-p",
                &pg.port.to_string(),
                "-U",
                USER,
                DB,
            ],
        );
        Some(pg)
    }

    /// Restarts the server (every client connection is cut).
    pub fn restart(&self) {
        let data = self.data();
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-t",
                "30",
                "restart",
            ],
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn try_run(&self, tool: &str, args: &[&str]) -> Output {
        self.command(tool)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"))
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let out = self.try_run(tool, args);
        assert!(
            out.status.success(),
            "{tool} {args:?} failed ({}):\n{}\n{}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
        out
    }

    /// A URL-form DSN over the unix socket (no password: local is trust).
    pub fn socket_url(&self) -> String {
        format!(
            "postgres://{USER}@/{DB}?host={}&port={}",
            self.socket_dir.display(),
            self.port
        )
    }

    /// A key=value DSN over the unix socket.
    pub fn socket_keywords(&self) -> String {
        format!(
            "host={} port={} user={USER} dbname={DB}",
            self.socket_dir.display(),
            self.port
        )
    }

    /// A URL-form DSN over TCP with `password` (the right one is [`PASSWORD`]).
    pub fn tcp_url(&self, password: &str) -> String {
        format!("postgres://{USER}:{password}@127.0.0.1:{}/{DB}", self.port)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        // Immediate: the tests' data is throwaway; waiting for a checkpoint
        // only slows the suite. The server must not outlive the test.
        let data = self.data();
        let stopped = self
            .command("pg_ctl")
            .args([
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
        if !matches!(&stopped, Ok(out) if out.status.success()) {
            eprintln!("warning: pg_ctl stop failed: {stopped:?}");
        }
    }
}
