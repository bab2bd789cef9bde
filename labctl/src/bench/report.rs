//! The report of a `labctl bench http` run: what it measured ([`BenchResult`], the `--json`
//! object) and the human text of it.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use labctl_core::NodeId;
use serde::Serialize;

use super::load::MAX_REQUESTS;

/// The share of failed requests above which the run fails (exit code 1), in percent.
pub const MAX_FAILED_PERCENT: f64 = 1.0;

/// What one run measured: the `--json` object.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    /// The lab's name.
    pub lab: String,
    /// The nameserver's HTTP URL.
    pub nameserver: String,
    /// `inputs` (each client pinned to one input node) or `nameserver` (every request redirected).
    pub via: &'static str,
    /// Concurrent clients.
    pub clients: u32,
    /// The share of requests that were writes, in percent, as asked.
    pub writes_percent: u8,
    /// The seed of the clients' choices and tags.
    pub seed: u64,
    /// How long registering and logging in every client took, in seconds (not measured load).
    pub setup_s: f64,
    /// How long the load ran, in seconds, measured (the asked duration plus the requests still
    /// in flight at the deadline).
    pub duration_s: f64,
    /// Successful reads (`GET /users/{u}/{t}/chat` answered 200).
    pub reads: Kind,
    /// Successful writes (`POST /users/{u}/{t}/chat` answered 201).
    pub writes: Kind,
    /// Failed requests by HTTP status (`"503"`) or transport failure (`"timeout"`, `"connect"`,
    /// `"redirect"`, `"body"`, `"transport"`).
    pub errors: BTreeMap<String, u64>,
    /// The first answer (or error message) of each kind of failure, shortened.
    pub error_examples: BTreeMap<String, String>,
    /// Failed requests in all.
    pub failed: u64,
    /// Requests sent in all (successful and failed).
    pub requests: u64,
    /// Whether at most 1% of the requests failed.
    pub passed: bool,
    /// Whether the run stopped at the cap of 1,000,000 requests before the deadline.
    pub capped: bool,
    /// The open loop's target, in requests per second over all clients (`--rate`); none for the
    /// closed loop. Latencies then count from each request's scheduled time.
    pub target_rate: Option<u32>,
    /// With `--rate`: how late requests left against their schedule (the timer's millisecond,
    /// a busy labctl, the cap of requests in flight); the latencies, counted from the schedule,
    /// include it.
    pub schedule_lag: Option<Lag>,
    /// What a read asks for: `new` (the messages after the last one the client read) or `whole`
    /// (the whole conversation).
    pub reads_mode: &'static str,
    /// How many input nodes the nameserver listed as live.
    pub live_inputs: usize,
    /// The input nodes the clients used, with how many measured requests went to each.
    pub inputs: Vec<InputUse>,
}

/// Throughput and latency of one kind of request (successful ones only).
#[derive(Debug, Serialize)]
pub struct Kind {
    pub count: u64,
    pub per_s: f64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Kind {
    /// The figures of `histogram`, recorded over `duration_s` seconds.
    pub fn new(histogram: &Histogram<u64>, duration_s: f64) -> Kind {
        let count = histogram.len();
        let ms = |us: u64| (count > 0).then(|| us as f64 / 1000.0);
        Kind {
            count,
            per_s: if duration_s > 0.0 {
                count as f64 / duration_s
            } else {
                0.0
            },
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// How late the open loop's requests left against their schedule.
#[derive(Debug, Serialize)]
pub struct Lag {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Lag {
    /// The figures of `histogram` (µs).
    pub fn new(histogram: &Histogram<u64>) -> Lag {
        let ms = |us: u64| us as f64 / 1000.0;
        Lag {
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// One input node that served requests.
#[derive(Debug, Serialize)]
pub struct InputUse {
    /// Its node id, when the nameserver listed it.
    pub id: Option<NodeId>,
    /// `host:port` of its HTTP server.
    pub http_address: String,
    /// Measured requests that reached it (or were meant to: a refused connection counts).
    pub requests: u64,
    /// How many of those failed.
    pub errors: u64,
}

/// "N of M requests failed (x%), more than 1%".
pub fn failure_line(result: &BenchResult) -> String {
    if result.requests == 0 {
        return "no request was sent".to_string();
    }
    format!(
        "{} of {} requests failed ({:.2}%), more than {MAX_FAILED_PERCENT}%",
        result.failed,
        result.requests,
        100.0 * result.failed as f64 / result.requests as f64
    )
}

/// The human report.
pub fn render(result: &BenchResult) -> String {
    let mut out = String::new();
    let approach = match result.via {
        "inputs" => "each client pinned to one input node from the nameserver's list, round robin",
        _ => "every request sent to the nameserver and redirected (307) to an input node",
    };
    out.push_str(&format!(
        "lab {}: {} clients for {:.1} s (after {:.1} s of setup), {}% writes, seed {}\n",
        result.lab,
        result.clients,
        result.duration_s,
        result.setup_s,
        result.writes_percent,
        result.seed
    ));
    out.push_str(&format!("via {}: {approach}\n", result.via));
    match result.target_rate {
        Some(rate) => {
            out.push_str(&format!(
                "open loop: {rate} requests/s scheduled, {:.1}/s answered\n",
                (result.reads.count + result.writes.count) as f64 / result.duration_s.max(1e-9)
            ));
            if let Some(lag) = &result.schedule_lag {
                out.push_str(&format!(
                    "  requests left late against their schedule by p50 {:.3} ms, p99 {:.3} ms, \
                     max {:.3} ms\n",
                    lag.p50_ms, lag.p99_ms, lag.max_ms
                ));
            }
        }
        None => out.push_str(
            "closed loop: each client sends its next request when the last is answered\n",
        ),
    }
    out.push_str(&format!(
        "input nodes: {} used of {} live\n",
        result.inputs.len(),
        result.live_inputs
    ));
    for input in &result.inputs {
        let node = input
            .id
            .map_or("node ?".to_string(), |id| format!("node {id}"));
        let errors = match input.errors {
            0 => String::new(),
            n => format!(", {n} failed"),
        };
        out.push_str(&format!(
            "  {node:<10} {:<21} {:>9} requests{errors}\n",
            input.http_address, input.requests
        ));
    }
    out.push('\n');
    out.push_str(&format!(
        "{:<8} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9}\n",
        "", "count", "per s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    ));
    for (name, kind) in [("reads", &result.reads), ("writes", &result.writes)] {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        out.push_str(&format!(
            "{name:<8} {:>9} {:>10.1} {:>9} {:>9} {:>9} {:>9}\n",
            kind.count,
            kind.per_s,
            ms(kind.p50_ms),
            ms(kind.p90_ms),
            ms(kind.p99_ms),
            ms(kind.max_ms)
        ));
    }
    out.push('\n');
    if result.errors.is_empty() {
        out.push_str(&format!("errors: none of {} requests\n", result.requests));
    } else {
        out.push_str(&format!(
            "errors: {} of {} requests ({:.2}%)\n",
            result.failed,
            result.requests,
            100.0 * result.failed as f64 / result.requests.max(1) as f64
        ));
        for (kind, count) in &result.errors {
            let example = result
                .error_examples
                .get(kind)
                .map_or(String::new(), |e| format!("  e.g. {e}"));
            out.push_str(&format!("  {kind:>9} ×{count}{example}\n"));
        }
    }
    if result.capped {
        out.push_str(&format!(
            "stopped at the cap of {MAX_REQUESTS} requests before the deadline\n"
        ));
    }
    if !result.passed {
        out.push_str(&format!("FAILED: {}\n", failure_line(result)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::load::MAX_LATENCY_US;

    #[test]
    fn percentiles_are_ordered_and_empty_kinds_have_none() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap();
        let empty = Kind::new(&histogram, 2.0);
        assert_eq!((empty.count, empty.p50_ms, empty.max_ms), (0, None, None));
        for us in [100, 200, 300, 5_000, 90_000] {
            histogram.record(us).unwrap();
        }
        let kind = Kind::new(&histogram, 2.0);
        assert_eq!(kind.count, 5);
        assert_eq!(kind.per_s, 2.5);
        let [p50, p90, p99, max] =
            [kind.p50_ms, kind.p90_ms, kind.p99_ms, kind.max_ms].map(Option::unwrap);
        assert!(p50 <= p90 && p90 <= p99 && p99 <= max, "{kind:?}");
        assert!((max - 90.0).abs() < 0.1, "{kind:?}");
    }
}
