//! End-to-end tests of `labctl logs`: the real binary reading the logs of a real lab started with
//! the process runtime, in a private `LABCTL_HOME` (see `live_util::Home`).
//!
//! Every expectation is computed from the log files themselves, read around each command (the
//! daemons keep logging, so a file may grow while `logs` runs): what was in a file before the
//! command must be printed, and nothing printed may be missing from the file after it.

mod common;
// Shared with the other live tests; this file uses only part of it.
#[allow(dead_code)]
mod live_util;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{topology_file, LABCTL};
use live_util::{Home, LiveReport};

/// How long `labctl logs -f` gets to print a line, or to exit once its lab is gone.
const FOLLOW_DEADLINE: Duration = Duration::from_secs(20);

/// The label of every daemon of a live lab: `bootstrap`, `nameserver`, `node-<id>`.
fn labels(live: &LiveReport) -> BTreeSet<String> {
    let mut labels: BTreeSet<String> = ["bootstrap", "nameserver"].map(String::from).into();
    labels.extend(live.addresses.keys().map(|id| format!("node-{id}")));
    labels
}

/// The lines of `<label>.log` in the ring6 lab, as they are now.
fn file_lines(home: &Home, label: &str) -> Vec<String> {
    let path = home
        .lab_folder("ring6")
        .join("logs")
        .join(format!("{label}.log"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .lines()
        .map(String::from)
        .collect()
}

/// The lines of every daemon's log, by label, as they are now.
fn all_file_lines(home: &Home, labels: &BTreeSet<String>) -> BTreeMap<String, Vec<String>> {
    labels
        .iter()
        .map(|label| (label.clone(), file_lines(home, label)))
        .collect()
}

/// The leading timestamp of a line as the daemons write it (`2026-11-27T23:59:52.578567Z`:
/// fixed width and UTC, so timestamps compare as text).
fn timestamp(line: &str) -> Option<&str> {
    let token = line.split(' ').next()?;
    (token.len() == 27 && token.as_bytes()[10] == b'T' && token.ends_with('Z')).then_some(token)
}

/// Checks that what `logs` printed for one daemon covers its file as it was `before` the command
/// and holds nothing but lines of its file `after` it.
fn check_covers(printed: &[&str], before: &[String], after: &[String], context: &str) {
    let printed: BTreeSet<&str> = printed.iter().copied().collect();
    let after: BTreeSet<&str> = after.iter().map(String::as_str).collect();
    for line in before {
        assert!(
            printed.contains(line.as_str()),
            "{context}: {line:?} is in the log but was not printed"
        );
    }
    for line in &printed {
        assert!(
            after.contains(line),
            "{context}: printed {line:?}, which is not in the log"
        );
    }
}

/// Splits a line of the merged view into its daemon's label and the log line, insisting the
/// label is padded to `width` and followed by ` | `.
fn split_prefixed(line: &str, width: usize) -> (&str, &str) {
    let label = line.get(..width);
    let rest = line.get(width..).and_then(|rest| rest.strip_prefix(" | "));
    match (label, rest) {
        (Some(label), Some(rest)) if !label.starts_with(' ') => (label.trim_end(), rest),
        _ => panic!("{line:?} does not start with a label padded to {width} and ` | `"),
    }
}

#[test]
fn logs_of_one_daemon_print_its_lines_and_nothing_else() {
    let home = Home::new();
    let live = home.up(&topology_file("ring6.toml"), &[]);
    let labels = labels(&live);
    let pid = live.addresses["3"].pid;

    for arg in ["3", "node-3"] {
        let before = file_lines(&home, "node-3");
        let run = home.labctl(&["logs", "ring6", arg]).expect_success();
        let after = file_lines(&home, "node-3");
        let printed: Vec<&str> = run.stdout.lines().collect();
        let context = format!("labctl logs ring6 {arg}");
        // Unprefixed, in the file's own order: a stretch of the file from its start.
        assert_eq!(printed, after[..printed.len()], "{context}");
        check_covers(&printed, &before, &after, &context);
        assert!(
            printed
                .iter()
                .any(|l| l.ends_with(&format!(" node-3 starting, pid {pid}"))),
            "{context}: no start line of node 3 (pid {pid}) in {printed:#?}"
        );
        for other in labels.iter().filter(|l| *l != "node-3") {
            assert!(
                !run.stdout.contains(&format!("{other} starting")),
                "{context}: printed {other}'s start line:\n{}",
                run.stdout
            );
        }
    }

    let run = home
        .labctl(&["logs", "ring6", "bootstrap"])
        .expect_success();
    assert!(
        run.stdout.contains(" bootstrap starting, pid "),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("node-"), "{}", run.stdout);

    // `-n 2`: the last two lines of the file (it may have grown since by a line or two).
    let before = file_lines(&home, "node-3");
    let run = home
        .labctl(&["logs", "ring6", "3", "-n", "2"])
        .expect_success();
    let after = file_lines(&home, "node-3");
    let printed: Vec<&str> = run.stdout.lines().collect();
    assert!(
        (before.len() - 2..=after.len() - 2).any(|i| after[i..i + 2] == printed),
        "-n 2 printed {printed:?}, not the last two lines of {after:#?}"
    );
    let run = home
        .labctl(&["logs", "ring6", "3", "--lines", "0"])
        .expect_success();
    assert_eq!(run.stdout, "");

    // Anything but one of the lab's daemons is an error naming those it has.
    for bad in ["9", "node-9", "router"] {
        home.labctl(&["logs", "ring6", bad]).expect_error(&[
            &format!("no daemon {bad:?}"),
            "bootstrap, nameserver, nodes 1-6",
            "`labctl logs ring6 1`",
        ]);
    }
}

#[test]
fn logs_of_a_lab_merge_every_daemon_in_time_order() {
    let home = Home::new();
    let live = home.up(&topology_file("ring6.toml"), &[]);
    let labels = labels(&live);
    assert_eq!(
        labels.len(),
        8,
        "ring6 has a bootstrap, a nameserver and six nodes"
    );
    let width = labels.iter().map(String::len).max().unwrap();

    let before = all_file_lines(&home, &labels);
    let run = home.labctl(&["logs", "ring6"]).expect_success();
    let after = all_file_lines(&home, &labels);

    let mut by_label: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut last = "";
    for line in run.stdout.lines() {
        let (label, rest) = split_prefixed(line, width);
        assert!(labels.contains(label), "unknown label in {line:?}");
        by_label.entry(label).or_default().push(rest);
        let time = timestamp(rest).unwrap_or_else(|| panic!("no timestamp in {line:?}"));
        assert!(time >= last, "{line:?} comes after a line of {last}");
        last = time;
    }
    assert_eq!(
        by_label.keys().copied().collect::<BTreeSet<_>>(),
        labels.iter().map(String::as_str).collect(),
        "every daemon's lines are there"
    );
    for (label, printed) in &by_label {
        check_covers(printed, &before[*label], &after[*label], label);
        assert!(
            printed
                .iter()
                .any(|l| l.contains(&format!(" {label} starting, pid "))),
            "{label}: no start line in {printed:#?}"
        );
    }

    // `-n 2`: at most two lines of each daemon, from the end of its log.
    let before = all_file_lines(&home, &labels);
    let run = home.labctl(&["logs", "ring6", "-n", "2"]).expect_success();
    let after = all_file_lines(&home, &labels);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for line in run.stdout.lines() {
        let (label, rest) = split_prefixed(line, width);
        *counts.entry(label).or_default() += 1;
        let position = after[label]
            .iter()
            .position(|l| l == rest)
            .unwrap_or_else(|| panic!("{line:?} is not in {label}'s log"));
        assert!(
            position + 2 >= before[label].len(),
            "-n 2 printed {line:?}, line {position} of {}",
            before[label].len()
        );
    }
    for label in &labels {
        let count = counts.get(label.as_str()).copied().unwrap_or(0);
        assert!(
            count <= 2 && count == before[label].len().min(2),
            "-n 2 printed {count} lines of {label}:\n{}",
            run.stdout
        );
    }
}

#[test]
fn logs_of_an_unknown_lab_is_an_error_telling_how_to_list_labs() {
    let home = Home::new();
    let said = home
        .labctl(&["logs", "nope"])
        .expect_error(&["no lab named \"nope\"", "`labctl ls` lists labs"]);
    // The hint ends the line: no system error tacked on after it.
    assert!(
        said.trim_end().ends_with("`labctl ls` lists labs"),
        "{said}"
    );
    home.labctl(&["logs", "nope", "3", "-f"])
        .expect_error(&["no lab named \"nope\""]);
}

/// A `labctl logs -f` running in the background, killed when dropped (a failing test included).
struct Follower {
    child: Child,
    /// Its stdout, line by line, from a reader thread.
    lines: Receiver<String>,
    /// What it printed so far.
    seen: Vec<String>,
}

impl Follower {
    /// Starts `labctl args` with `home` as `LABCTL_HOME`.
    fn start(home: &Home, args: &[&str]) -> Follower {
        let mut child = Command::new(LABCTL)
            .args(args)
            .env("LABCTL_HOME", home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting labctl logs -f");
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Follower {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits until it has printed a line matching `wanted`, and returns it.
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + FOLLOW_DEADLINE;
        loop {
            if let Some(line) = self.seen.iter().find(|l| wanted(l)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "labctl logs -f did not print {what} within {FOLLOW_DEADLINE:?}; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Now as the daemons write it: `2026-11-27T23:59:52.578567Z`.
fn timestamp_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        ))
        .expect("now is a four-digit year")
}

/// Appends `text` to a file of the ring6 lab's logs folder, creating it if need be.
fn append(home: &Home, file: &str, text: &str) {
    let path = home.lab_folder("ring6").join("logs").join(file);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    log.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("appending to {}: {e}", path.display()));
}

#[test]
fn follow_prints_appended_lines_and_ends_quietly_when_the_lab_is_removed() {
    let home = Home::new();
    home.up(&topology_file("ring6.toml"), &[]);
    let mut follower = Follower::start(&home, &["logs", "ring6", "--follow"]);
    // Its first output (what was already there) proves it is past reading the files once.
    follower.wait_for("node 3's start line", |l| {
        l.starts_with("node-3 ") && l.contains(" node-3 starting, pid ")
    });

    let now = timestamp_now();
    let newest = file_lines(&home, "node-3")
        .iter()
        .filter_map(|l| timestamp(l).map(String::from))
        .max()
        .expect("node 3 logged");
    assert!(now >= newest, "timestamp_now() gave {now}, before {newest}");
    let marker = format!("{now}  INFO appended by the logs test");
    append(
        &home,
        "node-3.log",
        &format!("{marker}\n  and its continuation\n"),
    );
    // Labels are padded to the longest, `nameserver`.
    let width = "nameserver".len();
    let line = follower.wait_for("the appended line", |l| l.ends_with(&marker));
    assert_eq!(line, format!("{:<width$} | {marker}", "node-3"));
    let next = follower.wait_for("the continuation", |l| l.ends_with("and its continuation"));
    assert_eq!(
        next,
        format!("{:<width$} |   and its continuation", "node-3")
    );

    // A daemon whose log appears after `logs -f` started is followed too.
    let late = format!("{}  INFO a daemon that started late", timestamp_now());
    append(&home, "node-99.log", &format!("{late}\n"));
    let line = follower.wait_for("the late daemon's line", |l| l.ends_with(&late));
    assert_eq!(line, format!("{:<width$} | {late}", "node-99"));

    // `labctl down` removes the lab's folder: `logs -f` ends, exit 0, not a word on stderr.
    home.labctl(&["down", "ring6"]).expect_success();
    let deadline = Instant::now() + FOLLOW_DEADLINE;
    let status = loop {
        if let Some(status) = follower
            .child
            .try_wait()
            .expect("waiting for labctl logs -f")
        {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "labctl logs -f still runs {FOLLOW_DEADLINE:?} after its lab was removed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(
        follower.child.stderr.as_mut().expect("piped stderr"),
        &mut stderr,
    )
    .expect("reading its stderr");
    assert!(status.success(), "labctl logs -f exited {status}: {stderr}");
    assert_eq!(stderr, "", "labctl logs -f should end quietly");
}
