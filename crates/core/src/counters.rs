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
