//! The replication log: appending entries, reading them back, and applying the committed ones
//! to the tables, the one code path shared by the writer and the replicas.

use std::path::Path;

use labctl_core::log::{Pos, Shape, WireEntry};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use time::OffsetDateTime;

use super::decide::{decide, timestamp, Ids};
use super::rows::{column_u64, exec, sqlite_error, unavailable};
use super::schema::set_meta;
use super::tx::Tx;
use labctl_core::plane::{PlaneInput, StoreJob};

use super::{int, Store, StoreError};
use crate::ops::{AppError, Change, ChatMessage, Command, Group, Outcome, Reply, User, Write};

impl Store {
    /// The log's shape (its base, and the epoch of every entry), for the data plane.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn shape(&self) -> Result<Shape, StoreError> {
        let sqlite = sqlite_error(&self.path);
        let mut shape = Shape::new(self.base, Vec::new(), self.base.seq);
        let mut statement = self
            .conn
            .prepare("SELECT seq, epoch FROM log ORDER BY seq")
            .map_err(sqlite)?;
        let mut rows = statement.query([]).map_err(sqlite)?;
        while let Some(row) = rows.next().map_err(sqlite)? {
            let seq = column_u64(row, 0).map_err(sqlite)?;
            let epoch = column_u64(row, 1).map_err(sqlite)?;
            shape.push(epoch, seq);
        }
        Ok(shape)
    }

    /// The epoch of entry `seq` (the base's, or a stored entry's).
    pub(super) fn epoch_at(&self, seq: u64) -> Result<u64, StoreError> {
        epoch_at(&self.conn, self.base, seq)
            .map_err(sqlite_error(&self.path))?
            .ok_or_else(|| StoreError::Corrupt(format!("no log entry {seq}")))
    }

    /// Keep the log up to entry `after`, drop what follows (an old writer's tail) and append
    /// `entries`, which must follow `after` one by one, in one durable transaction. Returns the
    /// new last entry.
    ///
    /// # Errors
    /// [`StoreError::Committed`] if `after` is below the applied prefix, [`StoreError::Gap`] if
    /// `after` is beyond the log or the entries do not follow it (nothing changes either way).
    pub fn append(&mut self, after: u64, entries: &[WireEntry]) -> Result<u64, StoreError> {
        self.sync_commits(true)?;
        let sqlite = sqlite_error(&self.path);
        let tx = Tx::write(&self.conn).map_err(sqlite)?;
        let last = append_in(&tx, &self.path, (self.applied, self.last), after, entries)?;
        tx.commit().map_err(sqlite)?;
        self.last = last;
        Ok(last)
    }

    /// Apply every entry up to `up_to` (committed, says the caller) not applied yet, in order, in
    /// one transaction, committed without waiting for the disk ([`Store::sync_commits`] says
    /// why that is safe). Returns each entry's answer: an [`Outcome`] as JSON, or `null` for a
    /// new writer's epoch-start entry.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] or [`StoreError::Corrupt`]: nothing is applied.
    pub fn apply_committed(&mut self, up_to: u64) -> Result<Vec<(u64, String)>, StoreError> {
        let up_to = up_to.min(self.last);
        if up_to <= self.applied {
            return Ok(Vec::new());
        }
        self.sync_commits(false)?;
        let sqlite = sqlite_error(&self.path);
        let tx = Tx::write(&self.conn).map_err(sqlite)?;
        let results = apply_in(&tx, &self.path, self.applied, up_to)?;
        tx.commit().map_err(sqlite)?;
        self.applied = up_to;
        Ok(results)
    }

    /// **Group commit**: carry out a run of [`StoreJob::Append`]s and [`StoreJob::Apply`]s, in
    /// order, in one transaction: one fsync for all of them, where each append alone commits
    /// (and syncs) its own (a group of applies only does not sync, as an apply alone). Returns
    /// one report per job, in order, each made only after the shared commit returned, so
    /// nothing is reported durable before it is; consecutive reports of one kind are merged (the
    /// last `Stored`, the `Applied` results end to end), as the data plane would read them one
    /// after the other.
    ///
    /// If any job fails, the whole transaction is rolled back and the jobs run one by one
    /// ([`Store::run_reported`]): each then succeeds or fails exactly as it would have alone.
    /// Any other job in `jobs` runs alone, in its place.
    pub fn run_group(&mut self, jobs: Vec<StoreJob>) -> Vec<PlaneInput> {
        if jobs.len() < 2 || !jobs.iter().all(groupable) {
            return jobs.into_iter().map(|job| self.run_reported(job)).collect();
        }
        match self.group_in_one_transaction(&jobs) {
            Ok(reports) => reports,
            Err(_) => jobs.into_iter().map(|job| self.run_reported(job)).collect(),
        }
    }

    /// [`Store::run`], with a failure reported to the plane as [`PlaneInput::StoreFailed`].
    pub fn run_reported(&mut self, job: StoreJob) -> PlaneInput {
        let append = matches!(job, StoreJob::Append { .. });
        let restore = matches!(job, StoreJob::Restore { .. });
        self.run(job).unwrap_or_else(|e| PlaneInput::StoreFailed {
            append,
            restore,
            reason: e.to_string(),
        })
    }

    fn group_in_one_transaction(
        &mut self,
        jobs: &[StoreJob],
    ) -> Result<Vec<PlaneInput>, StoreError> {
        self.sync_commits(
            jobs.iter()
                .any(|job| matches!(job, StoreJob::Append { .. })),
        )?;
        let Store {
            conn,
            path,
            last,
            applied,
            ..
        } = self;
        let sqlite = sqlite_error(path);
        let tx = Tx::write(conn).map_err(sqlite)?;
        let (mut new_last, mut new_applied) = (*last, *applied);
        let mut reports: Vec<PlaneInput> = Vec::with_capacity(jobs.len());
        for job in jobs {
            match job {
                StoreJob::Append { after, entries } => {
                    new_last = append_in(&tx, path, (new_applied, new_last), *after, entries)?;
                    if let Some(PlaneInput::Stored { .. }) = reports.last() {
                        reports.pop();
                    }
                    reports.push(PlaneInput::Stored { seq: new_last });
                }
                StoreJob::Apply { up_to } => {
                    let up_to = (*up_to).min(new_last);
                    let results = if up_to > new_applied {
                        let results = apply_in(&tx, path, new_applied, up_to)?;
                        new_applied = up_to;
                        results
                    } else {
                        Vec::new()
                    };
                    match reports.last_mut() {
                        Some(PlaneInput::Applied { results: before }) => before.extend(results),
                        _ => reports.push(PlaneInput::Applied { results }),
                    }
                }
                _ => unreachable!("only appends and applies are grouped"),
            }
        }
        tx.commit().map_err(sqlite)?;
        (*last, *applied) = (new_last, new_applied);
        Ok(reports)
    }

    /// Up to `limit` log entries after entry `after`, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn entries_since(&self, after: u64, limit: usize) -> Result<Vec<WireEntry>, StoreError> {
        read_entries(&self.conn, after, limit).map_err(sqlite_error(&self.path))
    }

    /// [`Store::entries_since`], with the position of entry `after` (the log-matching check's
    /// `prev`). `after` is raised to the base if below it.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], or [`StoreError::Corrupt`] if `after` is beyond the log.
    pub fn entries_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Pos, Vec<WireEntry>), StoreError> {
        let after = after.max(self.base.seq);
        let prev = Pos::new(self.epoch_at(after)?, after);
        Ok((prev, self.entries_since(after, limit)?))
    }

    /// The one-node shortcut: `write` becomes entry `last_seq() + 1` of `epoch` and is applied
    /// at once, in one transaction; a refused write leaves no entry. Returns the reply and the
    /// entry.
    ///
    /// Checks come in this order: the acting user exists (401), the values follow their rules
    /// (422; 404 for an id that is not a UUID), the target exists (404), the acting user may do
    /// this (403), it does not exist yet (409).
    ///
    /// # Errors
    /// The refusal, or [`AppError::Unavailable`] if the database fails or holds entries not
    /// applied yet (a node of a larger lab: its data plane decides what commits).
    pub fn execute(
        &mut self,
        write: &Write,
        epoch: u64,
        now: OffsetDateTime,
    ) -> Result<(Reply, WireEntry), AppError> {
        self.sync_commits(true).map_err(unavailable)?;
        self.execute_with_key(write, None, epoch, now)
    }

    /// [`Store::execute`] with an idempotency key: a key applied before answers as it did then,
    /// and nothing is appended.
    ///
    /// # Errors
    /// As [`Store::execute`].
    pub fn execute_with_key(
        &mut self,
        write: &Write,
        key: Option<&str>,
        epoch: u64,
        now: OffsetDateTime,
    ) -> Result<(Reply, WireEntry), AppError> {
        if let Some(key) = key {
            let first: Option<(String, i64)> = self
                .conn
                .query_row(
                    "SELECT answer, seq FROM replies WHERE key = ?1",
                    [key],
                    |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
                )
                .optional()
                .map_err(unavailable)?;
            if let Some((answer, seq)) = first {
                let outcome: Outcome = serde_json::from_str(&answer).map_err(unavailable)?;
                let seq = u64::try_from(seq).map_err(unavailable)?;
                let entry = match self.entries_since(seq - 1, 1).map_err(unavailable)?.pop() {
                    Some(entry) if entry.seq == seq => entry,
                    // Below the base (a snapshot replaced that part of the log): the base holds
                    // the write, and is a later position.
                    _ => WireEntry {
                        epoch: self.base.epoch,
                        seq: self.base.seq,
                        key: Some(key.to_string()),
                        body: String::new(),
                    },
                };
                return outcome.map(|reply| (reply, entry));
            }
        }
        if self.applied != self.last {
            return Err(AppError::Unavailable(format!(
                "the log holds entries {}..={} not applied yet",
                self.applied + 1,
                self.last
            )));
        }
        let command = Command {
            write: write.clone(),
            sent_at: timestamp(now)?,
        };
        let seq = self.last + 1;
        let entry = WireEntry {
            epoch,
            seq,
            key: key.map(str::to_string),
            body: serde_json::to_string(&command).map_err(unavailable)?,
        };
        let tx = Tx::write(&self.conn).map_err(unavailable)?;
        exec(
            &tx,
            "INSERT INTO log (seq, epoch, key, body) VALUES (?1, ?2, ?3, ?4)",
            params![seq as i64, epoch as i64, entry.key, entry.body],
        )
        .map_err(unavailable)?;
        let answer = apply_entry(&tx, &entry, &self.path).map_err(unavailable)?;
        let outcome: Outcome = serde_json::from_str(&answer).map_err(unavailable)?;
        // A refusal returns here, and dropping `tx` rolls the entry back.
        let reply = outcome?;
        set_meta(&tx, "applied", seq).map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
        self.last = seq;
        self.applied = seq;
        Ok((reply, entry))
    }
}

/// Whether a job may share a group commit ([`Store::run_group`]): an append or an apply.
pub fn groupable(job: &StoreJob) -> bool {
    matches!(job, StoreJob::Append { .. } | StoreJob::Apply { .. })
}

/// The epoch of entry `seq` in the log `conn` sees, whose base is `base`: the base's, or a
/// stored entry's; none below the base (a snapshot replaced it) or past the log.
pub(super) fn epoch_at(conn: &Connection, base: Pos, seq: u64) -> rusqlite::Result<Option<u64>> {
    if seq == base.seq {
        return Ok(Some(base.epoch));
    }
    if seq < base.seq {
        return Ok(None);
    }
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    conn.prepare_cached("SELECT epoch FROM log WHERE seq = ?1")?
        .query_row([seq], |row| row.get::<_, i64>(0))
        .optional()
        .map(|epoch| epoch.map(|e| e as u64))
}

/// [`Store::append`]'s work inside `tx`, on a log applied up to `applied` and ending at `last`;
/// returns the new last entry.
fn append_in(
    tx: &Tx<'_>,
    path: &Path,
    (applied, last): (u64, u64),
    after: u64,
    entries: &[WireEntry],
) -> Result<u64, StoreError> {
    if after < applied {
        return Err(StoreError::Committed { after, applied });
    }
    if after > last || entries.iter().zip(after + 1..).any(|(e, seq)| e.seq != seq) {
        return Err(StoreError::Gap { last, after });
    }
    let sqlite = sqlite_error(path);
    exec(tx, "DELETE FROM log WHERE seq > ?1", [int(after)?]).map_err(sqlite)?;
    let mut insert = tx
        .prepare_cached("INSERT INTO log (seq, epoch, key, body) VALUES (?1, ?2, ?3, ?4)")
        .map_err(sqlite)?;
    for e in entries {
        insert
            .execute(params![int(e.seq)?, int(e.epoch)?, e.key, e.body])
            .map_err(sqlite)?;
    }
    Ok(after + entries.len() as u64)
}

/// [`Store::apply_committed`]'s work inside `tx`: applies the entries after `applied` up to
/// `up_to` (which the log holds) and records the new applied position.
pub(super) fn apply_in(
    tx: &Tx<'_>,
    path: &Path,
    applied: u64,
    up_to: u64,
) -> Result<Vec<(u64, String)>, StoreError> {
    let sqlite = sqlite_error(path);
    let entries = read_entries(tx, applied, (up_to - applied) as usize).map_err(sqlite)?;
    let mut results = Vec::with_capacity(entries.len());
    for entry in &entries {
        let answer = apply_entry(tx, entry, path)?;
        results.push((entry.seq, answer));
    }
    set_meta(tx, "applied", up_to).map_err(sqlite)?;
    Ok(results)
}

/// Apply one committed entry inside `tx`; its answer. An entry whose key was applied before
/// answers as that one did; a refused write answers its refusal and changes nothing. Only a
/// storage failure is an error (and aborts the whole batch).
fn apply_entry(tx: &Tx<'_>, entry: &WireEntry, path: &Path) -> Result<String, StoreError> {
    let sqlite = sqlite_error(path);
    if entry.body.is_empty() {
        return Ok("null".to_string()); // a new writer's epoch-start entry
    }
    if let Some(key) = &entry.key {
        let first: Option<String> = tx
            .query_row("SELECT answer FROM replies WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(sqlite)?;
        if let Some(answer) = first {
            return Ok(answer); // a retry: the first attempt's answer, no second effect
        }
    }
    let outcome: Outcome = match serde_json::from_str::<Command>(&entry.body) {
        Err(error) => Err(AppError::Malformed(format!(
            "log entry {} is not a chat command: {error}",
            entry.seq
        ))),
        Ok(command) => {
            // A savepoint per entry: a refused change rolls back alone.
            let savepoint = tx.savepoint().map_err(sqlite)?;
            let ids = Ids::new(entry.epoch, entry.seq);
            match decide(&savepoint, &command.write, &command.sent_at, &ids) {
                // Storage trouble is not an answer: the batch fails, to be tried again.
                Err(AppError::Unavailable(why)) => {
                    return Err(StoreError::Corrupt(format!(
                        "applying entry {}: {why}",
                        entry.seq
                    )))
                }
                Err(refusal) => Err(refusal),
                Ok((reply, change)) => match apply_change(&savepoint, entry.seq, &change) {
                    Ok(()) => {
                        savepoint.commit().map_err(sqlite)?;
                        Ok(reply)
                    }
                    // The same on every node: an answer, not a failure.
                    Err(error)
                        if error.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) =>
                    {
                        Err(AppError::Conflict(format!(
                            "the change does not fit the data: {error}"
                        )))
                    }
                    Err(error) => return Err(sqlite(error)),
                },
            }
        }
    };
    let answer = serde_json::to_string(&outcome).expect("outcomes serialize");
    if let Some(key) = &entry.key {
        exec(
            tx,
            "INSERT INTO replies (key, seq, answer) VALUES (?1, ?2, ?3)",
            params![key, int(entry.seq)?, answer],
        )
        .map_err(sqlite)?;
    }
    Ok(answer)
}

/// [`read_entries`]' query. `LIMIT ?2 + 0`, not `LIMIT ?2`: SQLite's planner looks at a bare
/// bound limit, and so prepares the statement again each time it is bound to another value (a
/// parse and a plan at every apply); an expression it does not look into.
pub(super) const READ_ENTRIES: &str =
    "SELECT seq, epoch, key, body FROM log WHERE seq > ?1 ORDER BY seq LIMIT ?2 + 0";

/// Up to `limit` entries after `after`, in order.
fn read_entries(conn: &Connection, after: u64, limit: usize) -> rusqlite::Result<Vec<WireEntry>> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut statement = conn.prepare_cached(READ_ENTRIES)?;
    let rows = statement
        .query_map(params![after, limit], |row| {
            Ok(WireEntry {
                seq: column_u64(row, 0)?,
                epoch: column_u64(row, 1)?,
                key: row.get(2)?,
                body: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Applies `change`, made by log entry `seq`, to the tables (not the log). Deletions cascade by
/// hand, children first, as `Change`'s documentation says.
pub(super) fn apply_change(conn: &Connection, seq: u64, change: &Change) -> rusqlite::Result<()> {
    let seq = i64::try_from(seq).map_err(|_| out_of_range(seq))?;
    match change {
        Change::UserAdded {
            user,
            password_hash,
        } => {
            insert_user(conn, user, password_hash, 0)?;
        }
        Change::UserDeleted { uuid } => {
            // The groups it created go, with their members and messages; its memberships
            // elsewhere go; its messages elsewhere stay.
            exec(
                conn,
                "DELETE FROM group_messages
                 WHERE group_uuid IN (SELECT uuid FROM groups WHERE creator = ?1)",
                [uuid],
            )?;
            exec(
                conn,
                "DELETE FROM members
                 WHERE group_uuid IN (SELECT uuid FROM groups WHERE creator = ?1)
                    OR user_uuid = ?1",
                [uuid],
            )?;
            exec(conn, "DELETE FROM groups WHERE creator = ?1", [uuid])?;
            exec(conn, "DELETE FROM users WHERE uuid = ?1", [uuid])?;
        }
        Change::PrivateMessageAdded { to, message } => {
            insert_private_message(conn, seq, to, message)?;
        }
        Change::GroupAdded { group } => {
            insert_group(conn, group)?;
            // The creator is the first member.
            insert_member(conn, &group.uuid, &group.creator)?;
        }
        Change::GroupDeleted { uuid } => {
            exec(
                conn,
                "DELETE FROM group_messages WHERE group_uuid = ?1",
                [uuid],
            )?;
            exec(conn, "DELETE FROM members WHERE group_uuid = ?1", [uuid])?;
            exec(conn, "DELETE FROM groups WHERE uuid = ?1", [uuid])?;
        }
        Change::MemberAdded { group, user } => {
            insert_member(conn, group, user)?;
        }
        Change::MemberRemoved { group, user } => {
            exec(
                conn,
                "DELETE FROM members WHERE group_uuid = ?1 AND user_uuid = ?2",
                params![group, user],
            )?;
        }
        Change::GroupMessageAdded { group, message } => {
            insert_group_message(conn, seq, group, message)?;
        }
        Change::SessionsEnded { user, generation } => {
            let generation = i64::try_from(*generation).map_err(|_| out_of_range(*generation))?;
            exec(
                conn,
                "UPDATE users SET generation = ?2 WHERE uuid = ?1",
                params![user, generation],
            )?;
        }
    }
    Ok(())
}

/// The error for a `u64` that SQLite's signed integers cannot hold.
pub(super) fn out_of_range(value: u64) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(format!("{value} does not fit in an i64").into())
}

/// Inserts a row of `users` (a new user's session generation is 0).
pub(super) fn insert_user(
    conn: &Connection,
    user: &User,
    password_hash: &str,
    generation: u64,
) -> rusqlite::Result<()> {
    let generation = i64::try_from(generation).map_err(|_| out_of_range(generation))?;
    exec(
        conn,
        "INSERT INTO users (uuid, username, tag, password_hash, generation)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            user.uuid,
            user.username,
            user.tag,
            password_hash,
            generation
        ],
    )?;
    Ok(())
}

/// Inserts a row of `groups` (not its creator's membership).
pub(super) fn insert_group(conn: &Connection, group: &Group) -> rusqlite::Result<()> {
    exec(
        conn,
        "INSERT INTO groups (uuid, name, creator) VALUES (?1, ?2, ?3)",
        params![group.uuid, group.name, group.creator],
    )?;
    Ok(())
}

/// Inserts a row of `members`.
pub(super) fn insert_member(conn: &Connection, group: &str, user: &str) -> rusqlite::Result<()> {
    exec(
        conn,
        "INSERT INTO members (group_uuid, user_uuid) VALUES (?1, ?2)",
        params![group, user],
    )?;
    Ok(())
}

/// Inserts a row of `private_messages`.
pub(super) fn insert_private_message(
    conn: &Connection,
    seq: i64,
    to: &str,
    message: &ChatMessage,
) -> rusqlite::Result<()> {
    exec(
        conn,
        "INSERT INTO private_messages (seq, uuid, author, recipient, content, sent_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            seq,
            message.uuid,
            message.author,
            to,
            message.content,
            message.sent_at
        ],
    )?;
    Ok(())
}

/// Inserts a row of `group_messages`.
pub(super) fn insert_group_message(
    conn: &Connection,
    seq: i64,
    group: &str,
    message: &ChatMessage,
) -> rusqlite::Result<()> {
    exec(
        conn,
        "INSERT INTO group_messages (seq, uuid, group_uuid, author, content, sent_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            seq,
            message.uuid,
            group,
            message.author,
            message.content,
            message.sent_at
        ],
    )?;
    Ok(())
}
