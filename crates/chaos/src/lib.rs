//! Chaos runs (SPEC §8): what `labctl chaos` reads, records and concludes, without the I/O.
//!
//! A run goes like this:
//!
//! 1. [`scenario::Scenario::load`] reads a scenario file and checks it against its topology
//!    (every error names its line); [`schedule::Schedule`] turns its fixed steps and its seeded
//!    random faults into one timeline of faults.
//! 2. labctl runs the lab, the clients and the nemesis, and writes each operation as it happens
//!    as one [`history::Op`] per line of `history.jsonl`.
//! 3. [`check::check`] reads the history (and nothing else) and returns the anomalies of each
//!    kind; [`measure`] derives each fault's timings and the failovers from the same history.
//! 4. [`timeline::svg`] draws the run: one lane per node, the faults as bands, the operations as
//!    ticks, the anomalies in red.
//!
//! Because the checker only reads the history, `labctl chaos --check history.jsonl` judges a
//! recorded run again, the way Jepsen's checkers do.

pub mod check;
pub mod history;
pub mod measure;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod timeline;
