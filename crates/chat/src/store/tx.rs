//! Transactions and savepoints whose statements are prepared once.
//!
//! rusqlite's `Transaction` and `Savepoint` send `BEGIN …`, `COMMIT`, `SAVEPOINT …`, `RELEASE …`
//! and `ROLLBACK` through `execute_batch`, which parses the text again at every use: four
//! parses for each replicated write on every node, two for each read. Here they come from the
//! connection's statement cache, parsed once per connection.
//!
//! The semantics are rusqlite's: a [`Tx`] not committed is rolled back when dropped, and so is
//! a [`Savepoint`] (back to where it began, the transaction going on).

use std::ops::Deref;

use rusqlite::{Connection, Result};

/// Run one statement without parameters from the connection's statement cache.
fn run(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// An open transaction on `conn`: rolled back when dropped, unless committed.
pub(crate) struct Tx<'c> {
    conn: &'c Connection,
}

impl<'c> Tx<'c> {
    /// A write transaction: it takes the database's write lock at once (`BEGIN IMMEDIATE`).
    pub(crate) fn write(conn: &'c Connection) -> Result<Tx<'c>> {
        run(conn, "BEGIN IMMEDIATE")?;
        Ok(Tx { conn })
    }

    /// A read transaction: it sees the database as of its first statement, to the end
    /// (`BEGIN DEFERRED`, in WAL mode).
    pub(crate) fn read(conn: &'c Connection) -> Result<Tx<'c>> {
        run(conn, "BEGIN DEFERRED")?;
        Ok(Tx { conn })
    }

    /// Commit. On an error the transaction is rolled back, as it is dropped.
    pub(crate) fn commit(self) -> Result<()> {
        run(self.conn, "COMMIT")
    }

    /// End the transaction, changing nothing.
    pub(crate) fn rollback(self) -> Result<()> {
        run(self.conn, "ROLLBACK")
    }

    /// A savepoint inside the transaction: what follows it can be rolled back alone.
    pub(crate) fn savepoint(&self) -> Result<Savepoint<'_>> {
        run(self.conn, "SAVEPOINT entry")?;
        Ok(Savepoint {
            conn: self.conn,
            released: false,
        })
    }
}

impl Deref for Tx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        // Still open (not committed, or its commit failed): undo it. An error here leaves
        // nothing to do (SQLite rolls back a transaction it could not keep).
        if !self.conn.is_autocommit() {
            let _ = run(self.conn, "ROLLBACK");
        }
    }
}

/// A savepoint of a [`Tx`]: rolled back to when dropped, unless committed (released).
pub(crate) struct Savepoint<'t> {
    conn: &'t Connection,
    released: bool,
}

impl Savepoint<'_> {
    /// Keep what was done since the savepoint (in the transaction, which goes on).
    pub(crate) fn commit(mut self) -> Result<()> {
        run(self.conn, "RELEASE entry")?;
        self.released = true;
        Ok(())
    }
}

impl Deref for Savepoint<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if !self.released && !self.conn.is_autocommit() {
            let _ =
                run(self.conn, "ROLLBACK TO entry").and_then(|()| run(self.conn, "RELEASE entry"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        conn
    }

    fn values(conn: &Connection) -> Vec<i64> {
        let mut statement = conn.prepare("SELECT v FROM t ORDER BY v").unwrap();
        let rows = statement.query_map([], |row| row.get(0)).unwrap();
        rows.collect::<Result<_>>().unwrap()
    }

    #[test]
    fn a_transaction_commits_or_rolls_back_and_can_be_used_again() {
        let conn = db();
        for round in 0..3 {
            let tx = Tx::write(&conn).unwrap();
            tx.execute("INSERT INTO t VALUES (?1)", [round]).unwrap();
            tx.commit().unwrap();
            let tx = Tx::write(&conn).unwrap();
            tx.execute("INSERT INTO t VALUES (?1)", [100 + round])
                .unwrap();
            drop(tx); // not committed
            let tx = Tx::write(&conn).unwrap();
            tx.execute("INSERT INTO t VALUES (?1)", [200 + round])
                .unwrap();
            tx.rollback().unwrap();
        }
        assert_eq!(values(&conn), vec![0, 1, 2]);
        assert!(conn.is_autocommit(), "no transaction left open");
    }

    #[test]
    fn a_savepoint_rolls_back_alone() {
        let conn = db();
        let tx = Tx::write(&conn).unwrap();
        for v in 1..=4 {
            let savepoint = tx.savepoint().unwrap();
            savepoint.execute("INSERT INTO t VALUES (?1)", [v]).unwrap();
            if v % 2 == 0 {
                savepoint.commit().unwrap();
            } // else dropped: rolled back to before the insert
        }
        tx.commit().unwrap();
        assert_eq!(values(&conn), vec![2, 4]);
        assert!(conn.is_autocommit());
    }

    #[test]
    fn a_failed_commit_leaves_no_transaction_open() {
        // A deferred foreign key violated at COMMIT: the commit fails, the drop rolls back.
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE p (id INTEGER PRIMARY KEY);
             CREATE TABLE c (p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        let tx = Tx::write(&conn).unwrap();
        tx.execute("INSERT INTO c VALUES (7)", []).unwrap();
        assert!(tx.commit().is_err());
        assert!(conn.is_autocommit(), "rolled back");
        let count: i64 = conn
            .query_row("SELECT count(*) FROM c", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 0);
    }
}
