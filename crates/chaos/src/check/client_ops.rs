//! Client operations: each `invoke` paired with its completion.
//!
//! A client does one operation at a time, so the completion of an `invoke` is the next line of
//! the same client. Pairing goes by that order, never by value: a write's `fail` or `info`
//! carries a message, not the write's text.

use std::collections::HashMap;

use crate::history::{Op, Process, Type, F};

/// A client operation: its `invoke` line and, once it ended, its completion line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOp {
    /// The client.
    pub client: u32,
    /// `write` or `read`.
    pub f: F,
    /// Its `invoke` line (index in the history).
    pub invoke: usize,
    /// Its `ok`, `fail` or `info` line; `None` if the history ends before it does.
    pub completion: Option<usize>,
}

impl ClientOp {
    /// How it ended: `ok`, `fail` or `info`; an operation still running when the history ends
    /// has an unknown outcome, so `info`.
    pub fn outcome(&self, history: &[Op]) -> Type {
        self.completion.map_or(Type::Info, |at| history[at].kind)
    }

    /// A write's text (the value of its `invoke`).
    pub fn text<'h>(&self, history: &'h [Op]) -> Option<&'h str> {
        history[self.invoke].text()
    }
}

/// Every client operation, in the order of their `invoke` lines.
///
/// A completion with no `invoke` before it, or of another `f` than the pending `invoke`, is left
/// out (the pending operation then never ends); an `invoke` while the client already has one
/// pending leaves that one without a completion.
pub fn client_ops(history: &[Op]) -> Vec<ClientOp> {
    let mut ops: Vec<ClientOp> = Vec::new();
    // Each client's pending operation: its position in `ops`.
    let mut pending: HashMap<u32, usize> = HashMap::new();
    for (index, op) in history.iter().enumerate() {
        let Process::Client(client) = op.process else {
            continue;
        };
        if op.kind == Type::Invoke {
            pending.insert(client, ops.len());
            ops.push(ClientOp {
                client,
                f: op.f,
                invoke: index,
                completion: None,
            });
        } else if let Some(at) = pending.remove(&client) {
            if ops[at].f == op.f {
                ops[at].completion = Some(index);
            }
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::super::fixture::History;
    use super::*;

    #[test]
    fn completions_pair_by_process_order_not_by_value() {
        let mut h = History::new();
        h.invoke_write(0, "c0-1").invoke_write(1, "c1-1");
        h.end_write(1, Type::Fail, "503: no quorum");
        h.ok_write(0, "c0-1", 4);
        h.invoke_read(1).invoke_write(0, "c0-2");
        let history = h.ops();
        let ops = client_ops(&history);
        assert_eq!(
            ops,
            [
                ClientOp {
                    client: 0,
                    f: F::Write,
                    invoke: 0,
                    completion: Some(3)
                },
                ClientOp {
                    client: 1,
                    f: F::Write,
                    invoke: 1,
                    completion: Some(2)
                },
                ClientOp {
                    client: 1,
                    f: F::Read,
                    invoke: 4,
                    completion: None
                },
                ClientOp {
                    client: 0,
                    f: F::Write,
                    invoke: 5,
                    completion: None
                },
            ]
        );
        assert_eq!(ops[1].outcome(&history), Type::Fail);
        assert_eq!(ops[1].text(&history), Some("c1-1"));
        assert_eq!(
            ops[3].outcome(&history),
            Type::Info,
            "unfinished means unknown"
        );
    }

    #[test]
    fn a_stray_completion_is_left_out() {
        let mut h = History::new();
        h.ok_write(0, "c0-1", 4);
        h.invoke_write(0, "c0-2").ok_read(0, 4, &[]);
        let history = h.ops();
        assert_eq!(
            client_ops(&history),
            [ClientOp {
                client: 0,
                f: F::Write,
                invoke: 1,
                completion: None
            }]
        );
    }
}
