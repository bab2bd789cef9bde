//! Hand-written histories for the checker's tests: one method per kind of line, in time order.

use labctl_core::NodeId;
use labctl_fault::Fault;

use crate::history::{EpochView, Op, Process, Type, Value, F};

/// A history being written: each line is stamped with the current time, then the clock moves
/// on by 10 ms ([`History::at`] sets it).
#[derive(Debug, Default)]
pub(crate) struct History {
    ops: Vec<Op>,
    time_ms: u64,
}

impl History {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The lines written so far.
    pub(crate) fn ops(&self) -> Vec<Op> {
        self.ops.clone()
    }

    /// The next line's time.
    pub(crate) fn at(&mut self, time_ms: u64) -> &mut Self {
        self.time_ms = time_ms;
        self
    }

    /// Any line.
    pub(crate) fn line(
        &mut self,
        process: Process,
        kind: Type,
        f: F,
        value: Value,
        node: Option<NodeId>,
    ) -> &mut Self {
        self.ops.push(Op {
            time_ms: self.time_ms,
            process,
            kind,
            f,
            value,
            node,
        });
        self.time_ms += 10;
        self
    }

    /// A client's write invoked.
    pub(crate) fn invoke_write(&mut self, client: u32, text: &str) -> &mut Self {
        self.line(
            Process::Client(client),
            Type::Invoke,
            F::Write,
            Value::Text(text.into()),
            None,
        )
    }

    /// A client's write acknowledged by `node`.
    pub(crate) fn ok_write(&mut self, client: u32, text: &str, node: NodeId) -> &mut Self {
        self.line(
            Process::Client(client),
            Type::Ok,
            F::Write,
            Value::Text(text.into()),
            Some(node),
        )
    }

    /// A client's write ended with `kind` (`fail` or `info`) and a message.
    pub(crate) fn end_write(&mut self, client: u32, kind: Type, message: &str) -> &mut Self {
        self.line(
            Process::Client(client),
            kind,
            F::Write,
            Value::Text(message.into()),
            None,
        )
    }

    /// A write invoked and acknowledged.
    pub(crate) fn write_ok(&mut self, client: u32, text: &str, node: NodeId) -> &mut Self {
        self.invoke_write(client, text).ok_write(client, text, node)
    }

    /// A write invoked and answered 503.
    pub(crate) fn write_fail(&mut self, client: u32, text: &str) -> &mut Self {
        self.invoke_write(client, text).end_write(
            client,
            Type::Fail,
            "503: this part of the lab holds 2 of 6 nodes",
        )
    }

    /// A write invoked whose outcome is unknown (a 504).
    pub(crate) fn write_info(&mut self, client: u32, text: &str) -> &mut Self {
        self.invoke_write(client, text).end_write(
            client,
            Type::Info,
            "504: the writer did not answer",
        )
    }

    /// A client's read invoked.
    pub(crate) fn invoke_read(&mut self, client: u32) -> &mut Self {
        self.line(
            Process::Client(client),
            Type::Invoke,
            F::Read,
            Value::None,
            None,
        )
    }

    /// A client's read answered by `node` with `texts`.
    pub(crate) fn ok_read(&mut self, client: u32, node: NodeId, texts: &[&str]) -> &mut Self {
        self.line(
            Process::Client(client),
            Type::Ok,
            F::Read,
            texts_value(texts),
            Some(node),
        )
    }

    /// A read invoked and answered.
    pub(crate) fn read(&mut self, client: u32, node: NodeId, texts: &[&str]) -> &mut Self {
        self.invoke_read(client).ok_read(client, node, texts)
    }

    /// The final read at input node `node`.
    pub(crate) fn final_read(&mut self, node: NodeId, texts: &[&str]) -> &mut Self {
        self.line(
            Process::Lab,
            Type::Ok,
            F::FinalRead,
            texts_value(texts),
            Some(node),
        )
    }

    /// A node observed in `epoch`, following `root`, with `roles`.
    pub(crate) fn epoch(
        &mut self,
        node: NodeId,
        epoch: u64,
        root: NodeId,
        roles: &[&str],
    ) -> &mut Self {
        let view = EpochView {
            epoch,
            root: Some(root),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        };
        self.line(
            Process::Lab,
            Type::Info,
            F::Epoch,
            Value::Epoch(view),
            Some(node),
        )
    }

    /// A fault applied by the nemesis.
    pub(crate) fn fault(&mut self, fault: Fault) -> &mut Self {
        self.line(
            Process::Nemesis,
            Type::Ok,
            F::Fault,
            Value::Fault(fault),
            None,
        )
    }

    /// The lab converged.
    pub(crate) fn converge_ok(&mut self) -> &mut Self {
        self.line(Process::Lab, Type::Ok, F::Converge, Value::None, None)
    }

    /// The lab did not converge in time.
    pub(crate) fn converge_fail(&mut self, message: &str) -> &mut Self {
        self.line(
            Process::Lab,
            Type::Fail,
            F::Converge,
            Value::Text(message.into()),
            None,
        )
    }
}

fn texts_value(texts: &[&str]) -> Value {
    Value::Texts(texts.iter().map(|t| t.to_string()).collect())
}
