//! The workbook registry: one SQLite table of name → bytes.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS workbooks (
    name    TEXT PRIMARY KEY NOT NULL,
    content BLOB NOT NULL
);
";

pub struct Store {
    conn: Connection,
}

/// Whether a `put` made a new workbook or replaced one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Created,
    Replaced,
}

impl Store {
    /// Opens (creating if needed) the registry at `path`, or an in-memory one.
    pub fn open(path: Option<&Path>) -> rusqlite::Result<Store> {
        let conn = match path {
            Some(path) => Connection::open(path)?,
            None => Connection::open_in_memory()?,
        };
        // Another process (a backup, the kit) may briefly hold the file lock.
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn })
    }

    pub fn put(&mut self, name: &str, content: &[u8]) -> rusqlite::Result<Put> {
        let tx = self.conn.transaction()?;
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

    pub fn get(&self, name: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        self.conn
            .query_row(
                "SELECT content FROM workbooks WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()
    }

    /// All names, sorted bytewise (SQLite's BINARY collation, same as Rust's `str` order).
    pub fn list(&self) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM workbooks ORDER BY name")?;
        let names = stmt.query_map([], |row| row.get(0))?;
        names.collect()
    }

    /// True if a workbook was removed.
    pub fn delete(&self, name: &str) -> rusqlite::Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM workbooks WHERE name = ?1", [name])?
            > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_delete() {
        let mut store = Store::open(None).unwrap();
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
        let mut store = Store::open(None).unwrap();
        store.put("e", b"").unwrap();
        assert_eq!(store.get("e").unwrap(), Some(Vec::new()));
    }
}
