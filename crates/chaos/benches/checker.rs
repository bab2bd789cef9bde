//! How fast the checker judges a long run: `cargo bench -p labctl-chaos --bench checker`.
//!
//! The history is synthetic, 1,000,000 lines, and valid for every check (the bench asserts it),
//! so every finder walks all of it and none stops early:
//!
//! - a 6-node lab: node 1 writer of epoch 1; nodes 4, 5 and 6 input nodes;
//! - 8 clients, each with one operation at a time; in each round every client invokes one
//!   operation, then all of them complete, so the clients' lines interleave; half the operations
//!   are writes, half reads;
//! - a read returns every text acknowledged so far, oldest first. For the final reads to hold
//!   every acknowledged write while no read returns more than 100 texts, only one write in 2,500
//!   is acknowledged (100 in all); the others alternate `fail` (a 503: never seen) and `info`
//!   (a 504: here never seen either, which is allowed). Reads hold 50 texts on average, so the
//!   checker looks at about 12.5 million read texts;
//! - half-way, the nemesis kills node 1; epoch 2 follows with node 2 writer, and the next write
//!   is acknowledged a few milliseconds later (within `failover_within_s`);
//! - at the end the lab converges and nodes 4, 5 and 6 read back the 100 acknowledged texts.
//!
//! Only the checking is timed, not the building of the history. Figures: the median of a few
//! runs, in milliseconds, and lines per second.

use std::time::{Duration, Instant};

use labctl_chaos::check::{self, Options};
use labctl_chaos::history::{self, EpochView, Op, Process, Type, Value, F};
use labctl_chaos::measure;
use labctl_fault::{Fault, Target};

const LINES: usize = 1_000_000;
const CLIENTS: u32 = 8;
/// One write in this many is acknowledged.
const ACK_EVERY: usize = 2_500;
/// The lab's lines: 6 epoch lines at the start, the kill and 5 epoch lines half-way, the
/// convergence and 3 final reads at the end.
const LAB_LINES: usize = 6 + 6 + 4;
/// The nemesis kills the writer just before this write (all clients counted) is invoked: an
/// acknowledged one, half-way through the run.
const KILL_BEFORE_WRITE: usize = 50 * ACK_EVERY;

fn main() {
    let history = synthetic_history();
    assert_eq!(history.len(), LINES);
    let read_texts: usize = history
        .iter()
        .filter(|op| op.f == F::Read)
        .filter_map(Op::texts)
        .map(<[String]>::len)
        .sum();
    let options = Options {
        failover_within_ms: Some(2_000),
    };
    let found = check::check(&history, &options);
    assert!(
        found.is_empty(),
        "the synthetic history is valid: {found:?}"
    );
    assert_eq!(measure::failovers_ms(&history).len(), 1);
    println!(
        "history: {} lines, {} texts in reads, {} writes acknowledged",
        history.len(),
        read_texts,
        history
            .iter()
            .filter(|op| op.f == F::Write && op.kind == Type::Ok)
            .count()
    );

    report("check (all kinds)", 5, || {
        check::check(&history, &options);
    });
    report("  lost", 3, || {
        check::lost::find(&history);
    });
    report("  phantom", 3, || {
        check::phantom::find(&history);
    });
    report("  stale-read", 3, || {
        check::stale_read::find(&history);
    });
    report("  split-brain", 3, || {
        check::split_brain::find(&history);
    });
    report("  divergence", 3, || {
        check::divergence::find(&history);
    });
    report("  no-convergence", 3, || {
        check::no_convergence::find(&history);
    });
    report("  slow-failover", 3, || {
        check::slow_failover::find(&history, 2_000);
    });
    report("measure (timings, failovers, counts)", 3, || {
        measure::fault_timings(&history);
        measure::failovers(&history);
        measure::op_counts(&history);
    });

    let text: String = history.iter().map(|op| history::line(op) + "\n").collect();
    println!("history.jsonl: {:.1} MB", text.len() as f64 / 1e6);
    report("history::parse", 3, || {
        let parsed = history::parse(&text).expect("the history parses");
        assert_eq!(parsed.len(), LINES);
    });
}

/// Run `f` `runs` times and print the median time and the lines per second.
fn report(name: &str, runs: usize, mut f: impl FnMut()) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    let median = times[runs / 2];
    println!(
        "{name:<38} median {:>8.1} ms over {runs} runs, {:>6.1} M lines/s",
        median.as_secs_f64() * 1e3,
        LINES as f64 / median.as_secs_f64() / 1e6
    );
}

/// The history described at the top of this file.
fn synthetic_history() -> Vec<Op> {
    let mut lines: Vec<Op> = Vec::with_capacity(LINES);
    let roles = [
        "writer",
        "persistence",
        "forwarder",
        "input",
        "input",
        "input",
    ];
    for (node, role) in (1..=6).zip(roles) {
        let value = epoch(1, 1, role);
        push(
            &mut lines,
            Process::Lab,
            Type::Info,
            F::Epoch,
            value,
            Some(node),
        );
    }

    let ops = (LINES - LAB_LINES) / 2;
    let mut acked: Vec<String> = Vec::new();
    let mut writes = 0; // writes invoked so far, all clients
    let mut written = vec![0; CLIENTS as usize]; // each client's writes so far
    let mut op = 0;
    while op < ops {
        let round: Vec<u32> = (0..CLIENTS).take(ops - op).collect();
        // Each client's operation this round: (client, write number, text) or a read.
        let mut pending: Vec<(u32, Option<(usize, String)>)> = Vec::new();
        for &client in &round {
            // Each client alternates writes and reads; half the clients start with a write.
            let is_write = (op / CLIENTS as usize + client as usize).is_multiple_of(2);
            op += 1;
            if !is_write {
                push(
                    &mut lines,
                    Process::Client(client),
                    Type::Invoke,
                    F::Read,
                    Value::None,
                    None,
                );
                pending.push((client, None));
                continue;
            }
            if writes == KILL_BEFORE_WRITE {
                kill_the_writer(&mut lines);
            }
            written[client as usize] += 1;
            let text = format!("c{client}-{}", written[client as usize]);
            let value = Value::Text(text.clone());
            push(
                &mut lines,
                Process::Client(client),
                Type::Invoke,
                F::Write,
                value,
                None,
            );
            pending.push((client, Some((writes, text))));
            writes += 1;
        }
        for (client, write) in pending {
            let node = Some(4 + u64::from(client % 3));
            let process = Process::Client(client);
            match write {
                None => {
                    let value = Value::Texts(acked.clone());
                    push(&mut lines, process, Type::Ok, F::Read, value, node);
                }
                Some((number, text)) if number % ACK_EVERY == 0 => {
                    acked.push(text.clone());
                    push(
                        &mut lines,
                        process,
                        Type::Ok,
                        F::Write,
                        Value::Text(text),
                        node,
                    );
                }
                Some((number, _)) if number % 2 == 0 => {
                    let value = Value::Text("503: no writer in this epoch yet".into());
                    push(&mut lines, process, Type::Fail, F::Write, value, node);
                }
                Some(_) => {
                    let value = Value::Text("504: the writer did not answer in time".into());
                    push(&mut lines, process, Type::Info, F::Write, value, None);
                }
            }
        }
    }

    push(
        &mut lines,
        Process::Lab,
        Type::Ok,
        F::Converge,
        Value::None,
        None,
    );
    for node in 4..=6 {
        let value = Value::Texts(acked.clone());
        push(
            &mut lines,
            Process::Lab,
            Type::Ok,
            F::FinalRead,
            value,
            Some(node),
        );
    }
    lines
}

/// The nemesis kills node 1; epoch 2 begins on the others, node 2 its writer.
fn kill_the_writer(lines: &mut Vec<Op>) {
    let kill = Value::Fault(Fault::Kill {
        node: Target::Id(1),
    });
    push(lines, Process::Nemesis, Type::Ok, F::Fault, kill, None);
    let roles = ["writer", "forwarder", "input", "input", "input"];
    for (node, role) in (2..=6).zip(roles) {
        push(
            lines,
            Process::Lab,
            Type::Info,
            F::Epoch,
            epoch(2, 2, role),
            Some(node),
        );
    }
}

/// One line, stamped ten lines a millisecond (the run lasts 100 s).
fn push(lines: &mut Vec<Op>, process: Process, kind: Type, f: F, value: Value, node: Option<u64>) {
    let time_ms = (lines.len() / 10) as u64;
    lines.push(Op {
        time_ms,
        process,
        kind,
        f,
        value,
        node,
    });
}

/// A node's epoch line value: one role.
fn epoch(epoch: u64, root: u64, role: &str) -> Value {
    Value::Epoch(EpochView {
        epoch,
        root: Some(root),
        roles: vec![role.to_string()],
    })
}
