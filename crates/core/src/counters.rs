//! Per-epoch message counters, to check the algorithms' costs against their formulas.

use serde::{Deserialize, Serialize};

use crate::message::Kind;

/// What one node sent in one epoch, by kind, and how many Yo-Yo iterations it took part in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Yo-Yo setup messages sent.
    pub setup: u64,
    /// Yo-Yo YO- messages sent.
    pub yo_down: u64,
    /// Yo-Yo -YO messages sent.
    pub yo_up: u64,
    /// SHOUT+ Q messages sent.
    pub q: u64,
    /// SHOUT+ Yes messages sent.
    pub yes: u64,
    /// Yo-Yo iterations this node took part in.
    pub iterations: u32,
    /// The node's out-degree at the start of each iteration it took part in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub out_degrees: Vec<usize>,
    /// Messages refused and dropped (malformed, stale, from a stranger).
    pub dropped: u64,
}

impl Counters {
    /// Count one sent message.
    pub fn count(&mut self, kind: Kind) {
        match kind {
            Kind::Setup => self.setup += 1,
            Kind::YoDown => self.yo_down += 1,
            Kind::YoUp => self.yo_up += 1,
            Kind::Q => self.q += 1,
            Kind::Yes => self.yes += 1,
        }
    }

    /// Election messages sent: setup, YO- and -YO.
    pub fn election(&self) -> u64 {
        self.setup + self.yo_down + self.yo_up
    }

    /// Tree messages sent: Q and Yes.
    pub fn tree(&self) -> u64 {
        self.q + self.yes
    }
}

/// What a node has sent in this epoch, as it keeps the count: [`Counters`] without what the node
/// knows elsewhere (its iterations and out-degrees are Yo-Yo's), in 32 bits a kind (an epoch's
/// sends of one kind are at most the node's degree times its iterations). A simulated million
/// nodes each hold one: 32 bytes, not [`Counters`]' 80.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sent {
    setup: u32,
    yo_down: u32,
    yo_up: u32,
    q: u32,
    yes: u32,
    dropped: u64,
}

impl Sent {
    /// Count one sent message.
    pub(crate) fn count(&mut self, kind: Kind) {
        let n = match kind {
            Kind::Setup => &mut self.setup,
            Kind::YoDown => &mut self.yo_down,
            Kind::YoUp => &mut self.yo_up,
            Kind::Q => &mut self.q,
            Kind::Yes => &mut self.yes,
        };
        *n = n.saturating_add(1);
    }

    /// Count one message refused and dropped.
    pub(crate) fn dropped(&mut self) {
        self.dropped += 1;
    }

    /// The counters to report, with Yo-Yo's figures.
    pub(crate) fn counters(&self, iterations: u32, out_degrees: Vec<usize>) -> Counters {
        Counters {
            setup: self.setup.into(),
            yo_down: self.yo_down.into(),
            yo_up: self.yo_up.into(),
            q: self.q.into(),
            yes: self.yes.into(),
            iterations,
            out_degrees,
            dropped: self.dropped,
        }
    }
}
