//! The node's recorded trace: every trace line since the start of each of its last epochs, so
//! that `labctl trace NAME` can tell a live lab's elections, failovers included, after the fact
//! (SPEC §9). It lives in memory (a killed node's record goes with it) and is bounded: the
//! oldest epochs go first.

use std::collections::VecDeque;

use labctl_core::event::{Event, TraceEntry, TraceLine, Wire};
use labctl_core::Epoch;

/// How many epochs a node keeps.
pub const EPOCHS: usize = 16;
/// How many lines a node keeps at most, all epochs together (the current epoch is kept whole
/// up to this many).
pub const LINES: usize = 20_000;

/// The trace lines of a node's last epochs, oldest first.
#[derive(Debug, Default)]
pub struct Record {
    /// One run of lines per epoch; the first may hold the lines before the first epoch.
    epochs: VecDeque<Vec<TraceLine>>,
    lines: usize,
    /// The newest epoch seen.
    newest: Epoch,
}

impl Record {
    /// Keep `line`: the first line of a newer epoch (its start, or a message of it: the core
    /// sends an epoch's setup before it tells it started) opens a new run; old runs go once over
    /// the bounds.
    pub fn keep(&mut self, line: TraceLine) {
        let epoch = match &line.what {
            TraceEntry::Node(Event::EpochStarted { epoch }) => Some(*epoch),
            TraceEntry::Wire(Wire::Send { message, .. } | Wire::Receive { message, .. }) => {
                Some(message.epoch)
            }
            TraceEntry::Node(_) => None,
        };
        let newer = epoch.is_some_and(|e| e > self.newest);
        if newer || self.epochs.is_empty() {
            self.newest = self.newest.max(epoch.unwrap_or(0));
            self.epochs.push_back(Vec::new());
        }
        while self.epochs.len() > EPOCHS || (self.lines >= LINES && self.epochs.len() > 1) {
            let gone = self.epochs.pop_front().expect("more than one run");
            self.lines -= gone.len();
        }
        if self.lines >= LINES {
            // One epoch longer than the bound (a node flooded with drops): keep its start.
            return;
        }
        self.epochs.back_mut().expect("a run").push(line);
        self.lines += 1;
    }

    /// Every kept line, oldest first.
    pub fn lines(&self) -> Vec<TraceLine> {
        self.epochs.iter().flatten().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t: u64, what: Event) -> TraceLine {
        TraceLine {
            t,
            node: 1,
            what: TraceEntry::Node(what),
        }
    }

    fn started(t: u64, epoch: u64) -> TraceLine {
        line(t, Event::EpochStarted { epoch })
    }

    fn stalled(t: u64) -> TraceLine {
        line(t, Event::Stalled { ms: t })
    }

    #[test]
    fn keeps_the_last_epochs_whole_from_their_start() {
        let mut record = Record::default();
        record.keep(stalled(0));
        for epoch in 1..=(EPOCHS as u64 + 3) {
            record.keep(started(epoch * 10, epoch));
            record.keep(stalled(epoch * 10 + 1));
        }
        let lines = record.lines();
        assert_eq!(lines.len(), 2 * EPOCHS);
        // The oldest run kept starts with its epoch's start; the newest epoch is last.
        assert_eq!(lines[0], started(40, 4));
        assert_eq!(
            lines[lines.len() - 2],
            started((EPOCHS as u64 + 3) * 10, EPOCHS as u64 + 3)
        );
    }

    #[test]
    fn an_epochs_setup_sent_before_its_start_opens_its_run() {
        use labctl_core::message::{Body, Message};
        let send = |t, epoch| TraceLine {
            t,
            node: 1,
            what: TraceEntry::Wire(Wire::Send {
                to: 2,
                message: Message {
                    epoch,
                    body: Body::Setup { id: 1 },
                },
            }),
        };
        let mut record = Record::default();
        for epoch in 1..=(EPOCHS as u64 + 1) {
            record.keep(send(epoch * 10, epoch));
            record.keep(started(epoch * 10 + 1, epoch));
            // A late message of the epoch before opens nothing.
            record.keep(send(epoch * 10 + 2, epoch - 1));
        }
        let lines = record.lines();
        assert_eq!(lines.len(), 3 * EPOCHS);
        assert_eq!(lines[0], send(20, 2));
        assert_eq!(lines[1], started(21, 2));
    }

    #[test]
    fn bounded_in_lines_dropping_old_epochs_first() {
        let mut record = Record::default();
        record.keep(started(0, 1));
        for t in 1..LINES as u64 {
            record.keep(stalled(t));
        }
        record.keep(started(LINES as u64, 2));
        record.keep(stalled(LINES as u64 + 1));
        // Epoch 1 filled the bound: it went, epoch 2 is whole.
        assert_eq!(
            record.lines(),
            vec![started(LINES as u64, 2), stalled(LINES as u64 + 1)]
        );
        // One epoch past the bound keeps its start and stops there.
        for t in 0..2 * LINES as u64 {
            record.keep(stalled(t));
        }
        let lines = record.lines();
        assert_eq!(lines.len(), LINES);
        assert_eq!(lines[0], started(LINES as u64, 2));
    }
}
