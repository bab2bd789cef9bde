//! Where a request's time goes: one `tracing` span per hop, timed by name.
//!
//! A request crosses these hops on its way from the client to the store and back (the names are
//! the spans', all of target [`TARGET`], at `debug` level):
//!
//! | span | on | from … to |
//! |---|---|---|
//! | `http.get`, `http.post`, `http.delete` | the input node's HTTP layer | the request read … the response made (includes every `ask` it needs: a session check, then the operation) |
//! | `ask.read`, `ask.write` | the input node's HTTP layer | handing the request to the node's driver … its answer back (the data plane's route, the store, the tree's hops for a larger lab) |
//! | `ask.read.local` | the input node's HTTP layer | a read answered from this node's own store, or found not to be servable here (then an `ask.read` follows) |
//! | `plane` | the driver | one input of the data plane handled (a request, a store's report, a message) |
//! | `store.read.wait` | driver → reader | a read queued for the reader pool … a reader takes it |
//! | `store.read` | a reader thread | parse, query, answer (one read transaction) |
//! | `store.write.wait` | driver → writer | an append or apply queued … the writer takes it |
//! | `store.commit` | the writer thread | one group commit: its jobs and its fsync |
//! | `store.other` | the writer thread | another job (reading entries for a replica, a snapshot) |
//!
//! [`HopTimes`] is a [`Layer`] that times every span of [`TARGET`] from creation to close and
//! keeps, per name, the count and a histogram (four buckets per power of two: ±10 %). It costs
//! nothing unless installed: the spans are disabled for every other layer of a node (its log
//! shows `info` and up). `labctl` installs it when `LABCTL_HOPS` is set, and the node logs a
//! [`HopTimes::summary`] of each interval.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The target of every hop span.
pub const TARGET: &str = "hop";

/// Buckets per power of two.
const SUB: u32 = 4;
/// Buckets in all: up to 2⁶⁴ ns.
const BUCKETS: usize = 64 * SUB as usize;

/// The times of one span name.
#[derive(Clone)]
struct Times {
    count: u64,
    total_ns: u128,
    max_ns: u64,
    buckets: Box<[u64; BUCKETS]>,
}

impl Times {
    fn new() -> Times {
        Times {
            count: 0,
            total_ns: 0,
            max_ns: 0,
            buckets: Box::new([0; BUCKETS]),
        }
    }

    fn record(&mut self, ns: u64) {
        self.count += 1;
        self.total_ns += u128::from(ns);
        self.max_ns = self.max_ns.max(ns);
        self.buckets[bucket(ns)] += 1;
    }

    /// The value below which a share `q` of the times fall (the bucket's lower bound).
    fn quantile(&self, q: f64) -> u64 {
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return lower_bound(index);
            }
        }
        self.max_ns
    }
}

/// The bucket of `ns`: `SUB` buckets per power of two.
fn bucket(ns: u64) -> usize {
    let ns = ns.max(1);
    let log = 63 - ns.leading_zeros();
    let sub = if log >= 2 {
        (ns >> (log - 2)) & u64::from(SUB - 1)
    } else {
        0
    };
    (log * SUB) as usize + sub as usize
}

/// The smallest value of bucket `index`.
fn lower_bound(index: usize) -> u64 {
    let (log, sub) = (index as u32 / SUB, index as u64 % u64::from(SUB));
    if log < 2 {
        1 << log
    } else {
        (4 + sub) << (log - 2)
    }
}

/// When a span began (kept in its extensions).
struct Began(Instant);

/// The layer: times every hop span by name.
#[derive(Clone, Default)]
pub struct HopTimes {
    table: Arc<Mutex<BTreeMap<&'static str, Times>>>,
}

impl HopTimes {
    /// A layer with nothing timed yet.
    pub fn new() -> HopTimes {
        HopTimes::default()
    }

    /// One line per span name timed since the last call (in name order): count, p50, p90, p99,
    /// mean and max, in microseconds; then starts over. Empty if nothing was timed.
    pub fn summary(&self) -> String {
        let table = std::mem::take(&mut *self.table.lock().expect("the hop table lock"));
        let us = |ns: u64| ns as f64 / 1000.0;
        table
            .iter()
            .map(|(name, t)| {
                format!(
                    "{name:<16} n={:<8} p50={:.1}µs p90={:.1}µs p99={:.1}µs mean={:.1}µs max={:.1}µs\n",
                    t.count,
                    us(t.quantile(0.50)),
                    us(t.quantile(0.90)),
                    us(t.quantile(0.99)),
                    t.total_ns as f64 / t.count.max(1) as f64 / 1000.0,
                    us(t.max_ns)
                )
            })
            .collect()
    }
}

impl<S> Layer<S> for HopTimes
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().target() != TARGET {
            return;
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Began(Instant::now()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(began) = span.extensions().get::<Began>().map(|b| b.0) else {
            return;
        };
        let ns = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.table
            .lock()
            .expect("the hop table lock")
            .entry(span.name())
            .or_insert_with(Times::new)
            .record(ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn buckets_are_ordered_and_within_a_quarter_of_a_power_of_two() {
        let mut last = 0;
        for ns in [
            1u64,
            2,
            3,
            4,
            5,
            7,
            8,
            100,
            1000,
            1_000_000,
            3_000_000_000,
            u64::MAX,
        ] {
            let index = bucket(ns);
            assert!(index >= last, "{ns}");
            last = index;
            let low = lower_bound(index);
            assert!(
                low <= ns && ns - low <= low / 4 + 1,
                "{ns}: bucket from {low}"
            );
        }
    }

    /// Spans of the hop target are timed by name, each from creation to close (across an
    /// await, or a thread); spans of other targets are not.
    #[test]
    fn hop_spans_are_timed_by_name_and_others_are_not() {
        let hops = HopTimes::new();
        let subscriber = tracing_subscriber::registry().with(hops.clone());
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                let span = tracing::debug_span!(target: "hop", "store.read");
                std::thread::sleep(std::time::Duration::from_millis(2));
                drop(span);
            }
            drop(tracing::info_span!("other"));
        });
        let summary = hops.summary();
        let lines: Vec<&str> = summary.lines().collect();
        assert_eq!(lines.len(), 1, "{summary}");
        assert!(
            lines[0].starts_with("store.read") && lines[0].contains("n=3 "),
            "{summary}"
        );
        let p50: f64 = lines[0]
            .split("p50=")
            .nth(1)
            .and_then(|s| s.split("µs").next())
            .and_then(|s| s.parse().ok())
            .unwrap();
        assert!(p50 >= 1500.0, "a 2 ms span is timed at {p50} µs: {summary}");
        assert_eq!(hops.summary(), "", "each summary starts over");
    }
}
