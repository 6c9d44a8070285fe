//! The workbook registry: one table of name → bytes, in SQLite (one engine)
//! or in PostgreSQL (several engines sharing one registry).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS workbooks (
    name    TEXT PRIMARY KEY NOT NULL,
    content BLOB NOT NULL
);
";

const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS workbooks (
    name    TEXT PRIMARY KEY NOT NULL,
    content BYTEA NOT NULL
)";

/// Key of the advisory lock that serializes schema creation: two engines
/// starting at once would otherwise race inside `CREATE TABLE IF NOT EXISTS`
/// (it is not atomic in PostgreSQL; the loser fails on a unique index).
const PG_SCHEMA_LOCK: i64 = 0x7762_5f72_6567; // "wb_reg"

/// How long one connection attempt to PostgreSQL may take.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub enum Store {
    Sqlite(Connection),
    // Boxed: the driver's config and client are large, and one store lives
    // for the whole process anyway.
    Postgres(Box<Pg>),
}

/// A PostgreSQL registry: the parsed configuration (to reconnect after the
/// server dropped us) and the current connection.
pub struct Pg {
    config: postgres::Config,
    client: postgres::Client,
}

/// Whether a `put` made a new workbook or replaced one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Created,
    Replaced,
}

/// A registry error, whichever database it came from.
#[derive(Debug)]
pub enum Error {
    Sqlite(rusqlite::Error),
    Postgres(postgres::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sqlite(e) => write!(f, "{e}"),
            // The driver's Display is only the kind ("db error", "error
            // connecting to server"); what went wrong is in the sources.
            Error::Postgres(e) => f.write_str(&chain(e)),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sqlite(e)
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        Error::Postgres(e)
    }
}

/// An error and its sources, `: `-separated.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

pub type Result<T> = std::result::Result<T, Error>;

impl Store {
    /// Opens (creating if needed) the SQLite registry at `path`, or an in-memory one.
    pub fn open_sqlite(path: Option<&Path>) -> Result<Store> {
        let conn = match path {
            Some(path) => Connection::open(path)?,
            None => Connection::open_in_memory()?,
        };
        // Another process (a backup, the kit) may briefly hold the file lock.
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SQLITE_SCHEMA)?;
        Ok(Store::Sqlite(conn))
    }

    /// Connects to PostgreSQL with an already validated configuration and
    /// creates the table if it is absent.
    pub fn open_postgres(mut config: postgres::Config) -> Result<Store> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(PG_CONNECT_TIMEOUT);
        }
        let mut client = config.connect(postgres::NoTls)?;
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PG_SCHEMA_LOCK])?;
        tx.batch_execute(PG_SCHEMA)?;
        tx.commit()?;
        Ok(Store::Postgres(Box::new(Pg { config, client })))
    }

    pub fn put(&mut self, name: &str, content: &[u8]) -> Result<Put> {
        match self {
            Store::Sqlite(conn) => {
                let tx = conn.transaction()?;
                let existed = tx
                    .query_row(
                        "SELECT 1 FROM workbooks WHERE name = ?1",
                        [name],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                tx.execute(
                    "INSERT INTO workbooks (name, content) VALUES (?1, ?2)
                     ON CONFLICT(name) DO UPDATE SET content = excluded.content",
                    params![name, content],
                )?;
                tx.commit()?;
                Ok(if existed { Put::Replaced } else { Put::Created })
            }
            Store::Postgres(pg) => {
                // One statement, so two engines writing the same name cannot
                // both see "absent": `xmax = 0` holds only for a row this
                // statement inserted (an updated row carries our xid in xmax).
                let row = pg.with_client(|c| {
                    c.query_one(
                        "INSERT INTO workbooks (name, content) VALUES ($1, $2)
                         ON CONFLICT (name) DO UPDATE SET content = excluded.content
                         RETURNING (xmax = 0) AS inserted",
                        &[&name, &content as &(dyn postgres::types::ToSql + Sync)],
                    )
                })?;
                Ok(if row.get::<_, bool>(0) {
                    Put::Created
                } else {
                    Put::Replaced
                })
            }
        }
    }

    pub fn get(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Store::Sqlite(conn) => Ok(conn
                .query_row(
                    "SELECT content FROM workbooks WHERE name = ?1",
                    [name],
                    |row| row.get(0),
                )
                .optional()?),
            Store::Postgres(pg) => Ok(pg
                .with_client(|c| {
                    c.query_opt("SELECT content FROM workbooks WHERE name = $1", &[&name])
                })?
                .map(|row| row.get(0))),
        }
    }

    /// All names, sorted bytewise (SQLite's BINARY collation, PostgreSQL's
    /// "C" collation: both the same as Rust's `str` order).
    pub fn list(&mut self) -> Result<Vec<String>> {
        match self {
            Store::Sqlite(conn) => {
                let mut stmt = conn.prepare("SELECT name FROM workbooks ORDER BY name")?;
                let names = stmt.query_map([], |row| row.get(0))?;
                Ok(names.collect::<rusqlite::Result<_>>()?)
            }
            Store::Postgres(pg) => Ok(pg
                .with_client(|c| {
                    c.query(
                        "SELECT name FROM workbooks ORDER BY name COLLATE \"C\"",
                        &[],
                    )
                })?
                .iter()
                .map(|row| row.get(0))
                .collect()),
        }
    }

    /// True if a workbook was removed.
    pub fn delete(&mut self, name: &str) -> Result<bool> {
        match self {
            Store::Sqlite(conn) => {
                Ok(conn.execute("DELETE FROM workbooks WHERE name = ?1", [name])? > 0)
            }
            Store::Postgres(pg) => Ok(pg
                .with_client(|c| c.execute("DELETE FROM workbooks WHERE name = $1", &[&name]))?
                > 0),
        }
    }
}

impl Pg {
    /// Runs `op`, reconnecting first if the connection is known to be gone,
    /// and retrying once if it broke during `op`: a restart or failover of
    /// PostgreSQL must not need an engine restart, nor fail a request that
    /// can simply be sent again. Every statement here is one idempotent
    /// statement (a retried PUT that had committed reports "replaced").
    fn with_client<T>(
        &mut self,
        op: impl Fn(&mut postgres::Client) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        if self.client.is_closed() {
            self.reconnect()?;
        }
        match op(&mut self.client) {
            Err(_) if self.client.is_closed() => {
                self.reconnect()?;
                Ok(op(&mut self.client)?)
            }
            result => Ok(result?),
        }
    }

    fn reconnect(&mut self) -> Result<()> {
        eprintln!("wb-engine: the PostgreSQL connection was closed; reconnecting");
        self.client = self.config.connect(postgres::NoTls)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_delete() {
        let mut store = Store::open_sqlite(None).unwrap();
        assert_eq!(store.put("b", b"1").unwrap(), Put::Created);
        assert_eq!(store.put("a", b"\0\xff\n").unwrap(), Put::Created);
        assert_eq!(store.put("b", b"2").unwrap(), Put::Replaced);
        assert_eq!(store.get("b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(store.get("a").unwrap().as_deref(), Some(&b"\0\xff\n"[..]));
        assert_eq!(store.get("c").unwrap(), None);
        assert_eq!(store.list().unwrap(), vec!["a", "b"]);
        assert!(store.delete("a").unwrap());
        assert!(!store.delete("a").unwrap());
        assert_eq!(store.list().unwrap(), vec!["b"]);
    }

    #[test]
    fn empty_content_round_trips() {
        let mut store = Store::open_sqlite(None).unwrap();
        store.put("e", b"").unwrap();
        assert_eq!(store.get("e").unwrap(), Some(Vec::new()));
    }
}
