//! `labctl logs NAME [NODE] [-f] [-n N]`: a lab's daemon logs, read from the lab's folder.
//!
//! Every daemon of a lab (the bootstrap, the nameserver, `node-<id>`) logs with `tracing` to
//! `logs/<label>.log`, one event per line, each starting with an RFC 3339 timestamp. The process
//! runtime also captures each process's raw stdout and stderr in `logs/<label>.out`, empty unless
//! something went badly wrong (a panic, an error before logging started). Both runtimes keep these
//! files in the same folder, so this command reads files and never asks a runtime.
//!
//! One daemon's log prints as it is, followed by its `.out` when that holds anything. Without a
//! daemon named, every daemon's lines are merged in time order by their leading timestamp, each
//! prefixed by the daemon's label (like `docker compose logs`); a line without a timestamp (the
//! rest of a multi-line message, a panic's output) stays after the line it follows. `--follow`
//! then polls the files for appended lines until the lab's folder disappears.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use labctl_core::NodeId;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cli::LogsArgs;
use crate::lab::{LabDir, Record};
use crate::Outcome;

/// How often `--follow` looks for appended lines.
const POLL: Duration = Duration::from_millis(200);

/// Print the logs, then (with `--follow`) what is appended to them.
pub fn run(args: &LogsArgs) -> Result<Outcome> {
    let lab = LabDir::new(&args.name)?;
    let record = lab.load()?;
    let folder = lab.logs();
    let existing = daemons(&record, &folder)?;
    let prefixed = args.node.is_none();
    let selected = match &args.node {
        Some(arg) => vec![choose(arg, &existing, &lab.name)?],
        None => existing.into_iter().collect(),
    };
    let mut logs: Vec<DaemonLog> = selected
        .into_iter()
        .map(|daemon| DaemonLog::new(&folder, daemon))
        .collect();

    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    // What is there now, cut to the last N lines of each daemon. Without `--follow` an
    // unterminated last line is printed too: nothing will complete it for us.
    let mut batch = Vec::with_capacity(logs.len());
    for log in &mut logs {
        let mut lines = log.read(!args.follow)?;
        if let Some(n) = args.lines {
            lines.drain(..lines.len().saturating_sub(n));
        }
        batch.push(lines);
    }
    print(&mut out, &logs, &batch, prefixed)?;
    out.flush()?;
    if !args.follow {
        return Ok(Outcome::Done);
    }

    loop {
        std::thread::sleep(POLL);
        // `labctl down` removed the lab: nothing more will be logged.
        if !lab.path.exists() {
            return Ok(Outcome::Done);
        }
        if prefixed {
            // A daemon started after we did (its files appear later): follow it too.
            for daemon in daemons_in(&folder).unwrap_or_default() {
                if !logs.iter().any(|log| log.daemon == daemon) {
                    logs.push(DaemonLog::new(&folder, daemon));
                }
            }
        }
        let batch: Result<Vec<Vec<Line>>> = logs.iter_mut().map(|log| log.read(false)).collect();
        let batch = match batch {
            Ok(batch) => batch,
            // The folder went away while we read it: the lab is gone, not an error.
            Err(_) if !lab.path.exists() => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        print(&mut out, &logs, &batch, prefixed)?;
        out.flush()?;
    }
}

/// Write one batch of lines: one daemon's as they are, several merged in time order with each
/// line prefixed by its daemon's label padded to a common width. Write errors (a closed pipe)
/// go up to `main`, which exits quietly on a broken pipe.
fn print(
    out: &mut impl Write,
    logs: &[DaemonLog],
    batch: &[Vec<Line>],
    prefixed: bool,
) -> Result<()> {
    if !prefixed {
        for line in batch.iter().flatten() {
            writeln!(out, "{}", line.text)?;
        }
        return Ok(());
    }
    let labels: Vec<String> = logs.iter().map(|log| log.daemon.label()).collect();
    let width = labels.iter().map(String::len).max().unwrap_or(0);
    for (daemon, text) in merge(batch) {
        writeln!(out, "{:<width$} | {text}", labels[daemon])?;
    }
    Ok(())
}

// --- which daemons ------------------------------------------------------------------------------

/// One of a lab's daemons; ordered as logs list them: bootstrap, nameserver, nodes by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Daemon {
    /// The bootstrap server.
    Bootstrap,
    /// The nameserver.
    Nameserver,
    /// The node with this id.
    Node(NodeId),
}

impl Daemon {
    /// Its label: the stem of its log files and the prefix of its lines.
    fn label(self) -> String {
        match self {
            Daemon::Bootstrap => "bootstrap".to_string(),
            Daemon::Nameserver => "nameserver".to_string(),
            Daemon::Node(id) => format!("node-{id}"),
        }
    }

    /// The daemon whose label is `label` (`bootstrap`, `nameserver`, `node-<id>`), if any.
    fn from_label(label: &str) -> Option<Daemon> {
        match label {
            "bootstrap" => Some(Daemon::Bootstrap),
            "nameserver" => Some(Daemon::Nameserver),
            _ => {
                let digits = label.strip_prefix("node-")?;
                let id: NodeId = digits.parse().ok()?;
                // Only the spelling the daemons use, so a label maps back to its file.
                (id.to_string() == digits).then_some(Daemon::Node(id))
            }
        }
    }

    /// The daemon a user named: a node id (`3`), `node-3`, `bootstrap` or `nameserver`.
    fn from_arg(arg: &str) -> Option<Daemon> {
        let arg = arg.trim().to_ascii_lowercase();
        if arg.bytes().all(|b| b.is_ascii_digit()) {
            return arg.parse().ok().map(Daemon::Node);
        }
        let id = arg.strip_prefix("node-").and_then(|id| id.parse().ok());
        id.map(Daemon::Node).or_else(|| Daemon::from_label(&arg))
    }
}

/// Every daemon of a lab: those its record names and those with a log file in `folder`.
fn daemons(record: &Record, folder: &Path) -> Result<BTreeSet<Daemon>> {
    let mut all = daemons_in(folder)?;
    if record.bootstrap.is_some() {
        all.insert(Daemon::Bootstrap);
    }
    if record.nameserver.is_some() {
        all.insert(Daemon::Nameserver);
    }
    all.extend(record.nodes.keys().map(|&id| Daemon::Node(id)));
    Ok(all)
}

/// The daemons with a `<label>.log` or `<label>.out` in `folder` (none if it does not exist).
fn daemons_in(folder: &Path) -> Result<BTreeSet<Daemon>> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", folder.display())),
    };
    let mut found = BTreeSet::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", folder.display()))?
            .path();
        let is_log = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("log" | "out")
        );
        if let Some(daemon) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|_| is_log)
            .and_then(Daemon::from_label)
        {
            found.insert(daemon);
        }
    }
    Ok(found)
}

/// The daemon `arg` names, which must be one of `existing`; otherwise an error listing them.
fn choose(arg: &str, existing: &BTreeSet<Daemon>, lab: &str) -> Result<Daemon> {
    match Daemon::from_arg(arg) {
        Some(daemon) if existing.contains(&daemon) => Ok(daemon),
        _ if existing.is_empty() => bail!(
            "lab {lab:?} has no daemon {arg:?}: it has none yet (nothing in its record or its \
             logs folder); `labctl status {lab}` tells what state it is in"
        ),
        _ => {
            let example = existing
                .iter()
                .find_map(|d| match d {
                    Daemon::Node(id) => Some(*id),
                    _ => None,
                })
                .map(|id| format!(" (a node by its id, as in `labctl logs {lab} {id}`)"))
                .unwrap_or_default();
            bail!(
                "lab {lab:?} has no daemon {arg:?}: name one of {}{example}",
                describe(existing)
            )
        }
    }
}

/// The daemons in words: `bootstrap, nameserver, nodes 1-6, 9`.
fn describe(daemons: &BTreeSet<Daemon>) -> String {
    let mut words = Vec::new();
    let mut ids = Vec::new();
    for daemon in daemons {
        match daemon {
            Daemon::Node(id) => ids.push(*id),
            other => words.push(other.label()),
        }
    }
    // Runs of consecutive ids as `first-last`, so a big lab's list stays short.
    let mut runs: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        runs.push(if j > i {
            format!("{}-{}", ids[i], ids[j])
        } else {
            ids[i].to_string()
        });
        i = j + 1;
    }
    match ids.len() {
        0 => {}
        1 => words.push(format!("node {}", runs.join(", "))),
        _ => words.push(format!("nodes {}", runs.join(", "))),
    }
    words.join(", ")
}

// --- reading the files --------------------------------------------------------------------------

/// One daemon's two files and how far reading them got.
#[derive(Debug)]
struct DaemonLog {
    /// Whose files these are.
    daemon: Daemon,
    /// `<label>.log`: what it logs with `tracing`.
    log: Tail,
    /// `<label>.out`: its raw stdout and stderr (process runtime), usually empty.
    out: Tail,
    /// The time of its last timestamped line, which lines without one inherit.
    last_time: Option<Timestamp>,
}

impl DaemonLog {
    /// The files of `daemon` in the logs folder `folder`, not read yet.
    fn new(folder: &Path, daemon: Daemon) -> DaemonLog {
        let label = daemon.label();
        DaemonLog {
            daemon,
            log: Tail::new(folder.join(format!("{label}.log"))),
            out: Tail::new(folder.join(format!("{label}.out"))),
            last_time: None,
        }
    }

    /// The lines appended since the last call: the log's, then the output's (whose lines, as a
    /// rule without timestamps, thus follow the last thing the daemon logged). With `finished`,
    /// an unterminated last line is taken too.
    fn read(&mut self, finished: bool) -> Result<Vec<Line>> {
        let mut texts = self.log.read_lines()?;
        if finished {
            texts.extend(self.log.take_partial());
        }
        texts.extend(self.out.read_lines()?);
        if finished {
            texts.extend(self.out.take_partial());
        }
        Ok(stamp(texts, &mut self.last_time))
    }
}

/// Reads a file's complete lines as they are appended, from its start. A file that does not
/// exist yet has no lines; one that shrank (truncated) or was replaced is read again from its
/// start.
#[derive(Debug)]
struct Tail {
    /// The file.
    path: PathBuf,
    /// How many bytes of it have been read.
    offset: u64,
    /// Its inode when last read, to notice another file in its place.
    inode: Option<u64>,
    /// The start of a line whose end is not written yet.
    partial: Vec<u8>,
}

impl Tail {
    /// Follows `path`, not read yet.
    fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            offset: 0,
            inode: None,
            partial: Vec::new(),
        }
    }

    /// The complete lines appended since the last call, without their line breaks.
    fn read_lines(&mut self) -> Result<Vec<String>> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("opening {}", self.path.display())),
        };
        let context = || format!("reading {}", self.path.display());
        let meta = file.metadata().with_context(context)?;
        if self.inode != Some(meta.ino()) || meta.len() < self.offset {
            // A new file, or the old one truncated: start over.
            self.inode = Some(meta.ino());
            self.offset = 0;
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(self.offset))
            .with_context(context)?;
        let read = file.read_to_end(&mut self.partial).with_context(context)?;
        self.offset += read as u64;
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        let rest = self.partial.split_off(end + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        Ok(complete[..end].split(|&b| b == b'\n').map(text).collect())
    }

    /// The unterminated last line read so far, if any (taken: it is not returned again).
    fn take_partial(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| text(&std::mem::take(&mut self.partial)))
    }
}

/// A line's bytes as text: invalid UTF-8 replaced, a trailing carriage return dropped.
fn text(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

// --- time order ---------------------------------------------------------------------------------

/// A log line's time: nanoseconds since the Unix epoch.
type Timestamp = i128;

/// One line of a daemon's log, with the time it sorts by.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Line {
    /// The text, without its line break.
    text: String,
    /// Its own leading timestamp or, for a line without one, that of the line it follows
    /// (`None` before the first timestamped line).
    time: Option<Timestamp>,
    /// Whether `time` is the line's own: it starts an entry that continuation lines join.
    stamped: bool,
}

/// `texts` as lines with their times, `last_time` carrying the time of the last timestamped
/// line from one call to the next.
fn stamp(texts: Vec<String>, last_time: &mut Option<Timestamp>) -> Vec<Line> {
    texts
        .into_iter()
        .map(|text| {
            let own = leading_timestamp(&text);
            if own.is_some() {
                *last_time = own;
            }
            Line {
                text,
                time: *last_time,
                stamped: own.is_some(),
            }
        })
        .collect()
}

/// Merges several daemons' lines in time order, as (index into `streams`, text). A timestamped
/// line and the lines without one that follow it move together as one entry; entries are
/// sorted by time, stably, so a tie keeps the daemons' order and each daemon's own order.
fn merge(streams: &[Vec<Line>]) -> Vec<(usize, &str)> {
    let mut entries: Vec<(Option<Timestamp>, usize, &[Line])> = Vec::new();
    for (daemon, lines) in streams.iter().enumerate() {
        let mut start = 0;
        for end in 1..=lines.len() {
            if end == lines.len() || lines[end].stamped {
                entries.push((lines[start].time, daemon, &lines[start..end]));
                start = end;
            }
        }
    }
    entries.sort_by_key(|&(time, _, _)| time);
    entries
        .into_iter()
        .flat_map(|(_, daemon, lines)| lines.iter().map(move |l| (daemon, l.text.as_str())))
        .collect()
}

/// The RFC 3339 timestamp a line starts with, as `tracing-subscriber` writes it
/// (`2026-11-27T23:59:52.578567Z`; any number of fraction digits, `Z` or a `±HH:MM` offset).
/// `None` for a line that does not start with one (leading blanks included).
fn leading_timestamp(line: &str) -> Option<Timestamp> {
    let token = line.split(char::is_whitespace).next()?;
    // RFC 3339 lets any character part the date from the time; tracing writes `T`.
    if !matches!(token.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    let instant = OffsetDateTime::parse(token, &Rfc3339).ok()?;
    Some(instant.unix_timestamp_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nanoseconds since the epoch for a UTC second and a fraction.
    fn at(seconds: i64, nanos: i128) -> Option<Timestamp> {
        Some(i128::from(seconds) * 1_000_000_000 + nanos)
    }

    /// Lines as one daemon's file would hold them.
    fn lines(texts: &[&str]) -> Vec<Line> {
        stamp(texts.iter().map(|t| t.to_string()).collect(), &mut None)
    }

    #[test]
    fn timestamps_as_tracing_writes_them_parse() {
        assert_eq!(leading_timestamp("1970-01-01T00:00:00Z"), at(0, 0));
        assert_eq!(
            leading_timestamp("2026-11-27T23:59:52.578567Z  INFO node-1 starting, pid 18415"),
            at(1_795_823_992, 578_567_000)
        );
        assert_eq!(
            leading_timestamp("2000-03-01T00:00:00.5Z x"),
            at(11_017 * 86_400, 500_000_000)
        );
        // Offsets count: these two are the same instant.
        assert_eq!(
            leading_timestamp("2026-01-01T01:30:00+01:30 a"),
            leading_timestamp("2026-01-01T00:00:00Z b")
        );
        assert_eq!(
            leading_timestamp("2025-12-31T23:00:00.000000001-01:00"),
            at(1_767_225_600, 1)
        );
    }

    #[test]
    fn lines_without_a_leading_timestamp_have_none() {
        for line in [
            "",
            "thread 'main' panicked at src/main.rs:3:5:",
            "  2026-11-27T23:59:52.578567Z indented",
            "2026-11-27 23:59:52Z space instead of T",
            "2026-13-27T23:59:52Z",
            "2026-11-27T23:59:52",
            "2026-11-27T23:59:52.Z",
            "2026-11-27T23:59:52+0100",
            "2026-11-27T23:59:52Zextra",
            "é026-11-27T23:59:52Z",
        ] {
            assert_eq!(leading_timestamp(line), None, "{line:?}");
        }
    }

    #[test]
    fn merge_interleaves_daemons_by_time_and_keeps_continuations_with_their_line() {
        let bootstrap = lines(&[
            "2026-01-01T00:00:01Z b1",
            "2026-01-01T00:00:04Z b2",
            "  continued b2",
        ]);
        let node = lines(&[
            "2026-01-01T00:00:02Z n1",
            "  continued n1",
            "2026-01-01T00:00:03Z n2",
            "2026-01-01T00:00:05Z n3",
        ]);
        let streams = [bootstrap, node];
        assert_eq!(
            merge(&streams),
            vec![
                (0, "2026-01-01T00:00:01Z b1"),
                (1, "2026-01-01T00:00:02Z n1"),
                (1, "  continued n1"),
                (1, "2026-01-01T00:00:03Z n2"),
                (0, "2026-01-01T00:00:04Z b2"),
                (0, "  continued b2"),
                (1, "2026-01-01T00:00:05Z n3"),
            ]
        );
    }

    #[test]
    fn merge_breaks_ties_by_daemon_and_puts_untimed_leading_lines_first() {
        let a = lines(&["2026-01-01T00:00:01Z a1", "2026-01-01T00:00:01Z a2"]);
        let b = lines(&["garbage before any timestamp", "2026-01-01T00:00:01Z b1"]);
        assert_eq!(
            merge(&[a, b]),
            vec![
                (1, "garbage before any timestamp"),
                (0, "2026-01-01T00:00:01Z a1"),
                (0, "2026-01-01T00:00:01Z a2"),
                (1, "2026-01-01T00:00:01Z b1"),
            ]
        );
    }

    #[test]
    fn a_continuation_cut_from_its_line_keeps_that_lines_time() {
        // `-n 1` leaves only the continuation; it still sorts by the line it belonged to, and a
        // later batch's continuation inherits the time across calls.
        let mut last = None;
        let mut a = stamp(
            vec![
                "2026-01-01T00:00:03Z a1".to_string(),
                "  continued a1".to_string(),
            ],
            &mut last,
        );
        a.drain(..1);
        let b = lines(&["2026-01-01T00:00:02Z b1", "2026-01-01T00:00:04Z b2"]);
        assert_eq!(
            merge(&[a, b]),
            vec![
                (1, "2026-01-01T00:00:02Z b1"),
                (0, "  continued a1"),
                (1, "2026-01-01T00:00:04Z b2"),
            ]
        );
        let later = stamp(vec!["  more".to_string()], &mut last);
        assert_eq!(later[0].time, leading_timestamp("2026-01-01T00:00:03Z"));
        assert!(!later[0].stamped);
    }

    #[test]
    fn node_arguments_name_daemons() {
        assert_eq!(Daemon::from_arg("3"), Some(Daemon::Node(3)));
        assert_eq!(Daemon::from_arg("node-3"), Some(Daemon::Node(3)));
        assert_eq!(Daemon::from_arg("Node-03"), Some(Daemon::Node(3)));
        assert_eq!(Daemon::from_arg("bootstrap"), Some(Daemon::Bootstrap));
        assert_eq!(Daemon::from_arg("nameserver"), Some(Daemon::Nameserver));
        for bad in [
            "",
            "node",
            "node-",
            "node-x",
            "-3",
            "3.0",
            "ns",
            "node 3",
            "99999999999999999999",
        ] {
            assert_eq!(Daemon::from_arg(bad), None, "{bad:?}");
        }
        // Labels map back to files only in the daemons' own spelling.
        assert_eq!(Daemon::from_label("node-12"), Some(Daemon::Node(12)));
        assert_eq!(Daemon::from_label("node-012"), None);
        assert_eq!(Daemon::from_label("12"), None);
        assert_eq!(Daemon::Node(12).label(), "node-12");
    }

    #[test]
    fn choosing_a_missing_daemon_lists_those_there_are() {
        let existing: BTreeSet<Daemon> = [
            Daemon::Bootstrap,
            Daemon::Nameserver,
            Daemon::Node(1),
            Daemon::Node(2),
            Daemon::Node(3),
            Daemon::Node(7),
        ]
        .into();
        assert_eq!(choose("2", &existing, "lab").unwrap(), Daemon::Node(2));
        assert_eq!(
            choose("nameserver", &existing, "lab").unwrap(),
            Daemon::Nameserver
        );
        for bad in ["9", "node-9", "router"] {
            let err = choose(bad, &existing, "lab").unwrap_err().to_string();
            assert!(
                err.contains(&format!("no daemon {bad:?}"))
                    && err.contains("bootstrap, nameserver, nodes 1-3, 7")
                    && err.contains("`labctl logs lab 1`"),
                "{err}"
            );
        }
        assert_eq!(describe(&[Daemon::Node(4)].into()), "node 4");
    }

    #[test]
    fn a_tail_reads_complete_lines_and_copes_with_late_truncated_and_replaced_files() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("node-1.log");
        let mut tail = Tail::new(path.clone());
        assert_eq!(tail.read_lines().unwrap(), Vec::<String>::new());

        let append = |bytes: &[u8]| {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            file.write_all(bytes).unwrap();
        };
        append(b"one\r\ntwo\nthr");
        assert_eq!(tail.read_lines().unwrap(), ["one", "two"]);
        append(b"ee\n");
        assert_eq!(tail.read_lines().unwrap(), ["three"]);
        assert_eq!(tail.read_lines().unwrap(), Vec::<String>::new());

        std::fs::write(&path, b"new\n").unwrap();
        assert_eq!(tail.read_lines().unwrap(), ["new"]);

        let other = dir.path().join("other");
        std::fs::write(&other, b"replaced, longer than before\nhalf").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(tail.read_lines().unwrap(), ["replaced, longer than before"]);
        assert_eq!(tail.take_partial().as_deref(), Some("half"));
        assert_eq!(tail.take_partial(), None);
    }

    #[test]
    fn a_daemons_output_follows_its_log_and_only_when_not_empty() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::write(dir.path().join("node-2.log"), "2026-01-01T00:00:01Z up\n").unwrap();
        std::fs::write(dir.path().join("node-2.out"), "").unwrap();
        let mut log = DaemonLog::new(dir.path(), Daemon::Node(2));
        let texts = |lines: Vec<Line>| lines.into_iter().map(|l| l.text).collect::<Vec<_>>();
        assert_eq!(texts(log.read(true).unwrap()), ["2026-01-01T00:00:01Z up"]);
        std::fs::write(dir.path().join("node-2.out"), "thread 'main' panicked").unwrap();
        let lines = log.read(true).unwrap();
        assert_eq!(lines[0].time, leading_timestamp("2026-01-01T00:00:01Z"));
        assert_eq!(texts(lines), ["thread 'main' panicked"]);
        assert_eq!(daemons_in(dir.path()).unwrap(), [Daemon::Node(2)].into());
    }
}
