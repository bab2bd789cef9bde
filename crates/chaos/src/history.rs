//! The history of a chaos run (SPEC §8): one [`Op`] per line of `history.jsonl`, in time order.
//!
//! Every operation a client performs is two lines, its `invoke` and its completion: `ok` (it
//! happened), `fail` (it did not: a 4xx or a 503) or `info` (nobody knows: a timeout, a 504, a
//! broken connection). Faults are operations of the `nemesis`; what labctl observes of the lab
//! (each node's epoch and roles, the convergence after the last heal, the final reads) is the
//! `lab`'s. Jepsen's histories have the same shape.

use std::fmt;

use labctl_core::NodeId;
use labctl_fault::Fault;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One line of `history.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Milliseconds since the run's workload started.
    pub time_ms: u64,
    /// Who performed it.
    pub process: Process,
    /// `invoke`, `ok`, `fail` or `info`.
    #[serde(rename = "type")]
    pub kind: Type,
    /// What was performed.
    pub f: F,
    /// A write's text; a read's texts (on `ok`); a fault; an epoch observation; else a message.
    #[serde(default)]
    pub value: Value,
    /// The node that answered (the input node that served a request, the node observed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
}

/// Who performed an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// Chat client number `n` (from 0), one operation at a time.
    Client(u32),
    /// The fault injector.
    Nemesis,
    /// labctl watching the lab: epochs, convergence, final reads.
    Lab,
}

/// An operation's step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Type {
    /// Started.
    Invoke,
    /// Done.
    Ok,
    /// Not done, for certain.
    Fail,
    /// Outcome unknown (or, for `epoch` lines, an observation).
    Info,
}

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum F {
    /// A message to the shared group; the value is its unique text.
    Write,
    /// The group read back by a client during the run.
    Read,
    /// A fault applied by the nemesis.
    Fault,
    /// The group read at one input node after convergence.
    FinalRead,
    /// A node's epoch, root and roles as labctl observed them.
    Epoch,
    /// Waiting for the lab to converge after the last heal (`ok` or `fail`).
    Converge,
}

/// An operation's value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// None (`null`).
    #[default]
    None,
    /// A write's text, or a message (why an operation failed).
    Text(String),
    /// The texts a read saw, oldest first.
    Texts(Vec<String>),
    /// A fault, as SPEC §7 writes it (`leader` resolved on the `ok` line).
    Fault(Fault),
    /// An epoch observation.
    Epoch(EpochView),
    /// Anything else (kept as it was read).
    Other(serde_json::Value),
}

/// A node's epoch, the root it follows and its roles, as its admin API reported them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochView {
    /// The epoch.
    pub epoch: u64,
    /// The root (leader) of its tree in that epoch, once known.
    pub root: Option<NodeId>,
    /// Its roles: `writer`, `persistence`, `input`, `forwarder`.
    pub roles: Vec<String>,
}

impl EpochView {
    /// Whether the node is its component's writer.
    pub fn is_writer(&self) -> bool {
        self.roles.iter().any(|r| r == "writer")
    }
}

impl Op {
    /// The value as a write's text.
    pub fn text(&self) -> Option<&str> {
        match &self.value {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The value as a read's texts (an empty read is `[]`).
    pub fn texts(&self) -> Option<&[String]> {
        match &self.value {
            Value::Texts(texts) => Some(texts),
            _ => None,
        }
    }

    /// The value as a fault.
    pub fn fault(&self) -> Option<&Fault> {
        match &self.value {
            Value::Fault(fault) => Some(fault),
            _ => None,
        }
    }

    /// The value as an epoch observation.
    pub fn epoch(&self) -> Option<&EpochView> {
        match &self.value {
            Value::Epoch(view) => Some(view),
            _ => None,
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(n) => s.serialize_u32(*n),
            Process::Nemesis => s.serialize_str("nemesis"),
            Process::Lab => s.serialize_str("lab"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u32),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Process::Client(n)),
            Raw::Name(name) if name == "nemesis" => Ok(Process::Nemesis),
            Raw::Name(name) if name == "lab" => Ok(Process::Lab),
            Raw::Name(name) => Err(serde::de::Error::custom(format!(
                "process {name:?} is neither a client number, \"nemesis\" nor \"lab\""
            ))),
        }
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(n) => write!(f, "client {n}"),
            Process::Nemesis => f.write_str("nemesis"),
            Process::Lab => f.write_str("lab"),
        }
    }
}

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {source}")]
pub struct ParseError {
    /// The line (from 1).
    pub line: usize,
    /// What was wrong with it.
    #[source]
    pub source: serde_json::Error,
}

/// Read a `history.jsonl` text: one operation per line; blank lines are skipped.
pub fn parse(text: &str) -> Result<Vec<Op>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|source| ParseError {
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// One operation as its line of `history.jsonl` (no newline).
pub fn line(op: &Op) -> String {
    serde_json::to_string(op).expect("an operation serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let ops = vec![
            Op {
                time_ms: 1,
                process: Process::Client(0),
                kind: Type::Invoke,
                f: F::Write,
                value: Value::Text("c0-1".into()),
                node: None,
            },
            Op {
                time_ms: 9,
                process: Process::Client(0),
                kind: Type::Ok,
                f: F::Read,
                value: Value::Texts(vec!["c0-1".into()]),
                node: Some(4),
            },
            Op {
                time_ms: 10,
                process: Process::Nemesis,
                kind: Type::Ok,
                f: F::Fault,
                value: Value::Fault(Fault::Kill {
                    node: labctl_fault::Target::Id(1),
                }),
                node: None,
            },
            Op {
                time_ms: 11,
                process: Process::Lab,
                kind: Type::Info,
                f: F::Epoch,
                value: Value::Epoch(EpochView {
                    epoch: 2,
                    root: Some(2),
                    roles: vec!["writer".into()],
                }),
                node: Some(2),
            },
            Op {
                time_ms: 12,
                process: Process::Client(1),
                kind: Type::Ok,
                f: F::Read,
                value: Value::Texts(Vec::new()),
                node: Some(5),
            },
            Op {
                time_ms: 13,
                process: Process::Lab,
                kind: Type::Fail,
                f: F::Converge,
                value: Value::None,
                node: None,
            },
        ];
        let text: String = ops.iter().map(|op| line(op) + "\n").collect();
        assert!(text.starts_with(
            r#"{"time_ms":1,"process":0,"type":"invoke","f":"write","value":"c0-1"}"#
        ));
        assert!(text.contains(
            r#""process":"nemesis","type":"ok","f":"fault","value":{"action":"kill","node":1}"#
        ));
        assert_eq!(parse(&text).unwrap(), ops);
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = parse("{\"time_ms\":1,\"process\":0,\"type\":\"ok\",\"f\":\"write\"}\n\n{\"time_ms\":2,\"process\":\"judge\",\"type\":\"ok\",\"f\":\"read\"}").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.to_string().contains("judge"), "{err}");
    }
}
