//! The resource guard of `labctl up`: before anything starts, estimate what the lab will take
//! (memory and tasks, from per-node figures measured for each runtime) and refuse a lab the machine
//! cannot hold, saying the estimate and the largest lab that fits. `--force` goes on anyway.
//!
//! The figures (release build, measured 2026-12-04 with `/proc/PID/status` on labs of 6 and 30
//! nodes): a node process holds 18–21 MiB resident and runs 8 threads; the bootstrap and the
//! nameserver about 14 MiB each. In a container the node holds 16–17 MiB and 8 threads, and its
//! runtime shim (`containerd-shim`) another 13 MiB and 13 threads.

/// What one node, or the lab's fixed part, takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// Resident memory, in bytes.
    pub memory: u64,
    /// Tasks (threads) it runs.
    pub tasks: u64,
}

const MIB: u64 = 1 << 20;

/// One node in `runtime` (`process` or `docker`).
pub fn per_node(runtime: &str) -> Footprint {
    match runtime {
        "docker" => Footprint {
            memory: 32 * MIB,
            tasks: 21,
        },
        _ => Footprint {
            memory: 21 * MIB,
            tasks: 8,
        },
    }
}

/// The bootstrap and the nameserver together.
pub const FIXED: Footprint = Footprint {
    memory: 30 * MIB,
    tasks: 16,
};

/// What the machine has free for the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Memory available without swapping (`MemAvailable`), in bytes.
    pub memory: u64,
    /// Tasks that may still start (the lower of the system's and this user's limits, minus the
    /// tasks running now); None when unknown.
    pub tasks: Option<u64>,
}

impl Machine {
    /// This machine, from `/proc`; None where Linux's files are missing.
    pub fn here() -> Option<Machine> {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()?
            * 1024;
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
        };
        // /proc/loadavg: "0.00 0.01 0.05 2/345 6789": the fourth field counts every task.
        let running = std::fs::read_to_string("/proc/loadavg").ok().and_then(|t| {
            t.split_whitespace()
                .nth(3)?
                .split('/')
                .nth(1)?
                .parse::<u64>()
                .ok()
        });
        let mut limit = read("/proc/sys/kernel/threads-max");
        // This user's process limit (`None`: unlimited).
        let nproc = rustix::process::getrlimit(rustix::process::Resource::Nproc);
        if let Some(current) = nproc.current {
            limit = Some(limit.map_or(current, |l| l.min(current)));
        }
        let tasks = limit.zip(running).map(|(l, r)| l.saturating_sub(r));
        Some(Machine { memory, tasks })
    }
}

/// The share of the available memory a lab may take: the rest is the system's, the browser's,
/// the compiler's.
const MEMORY_SHARE: f64 = 0.8;

/// What a lab of `nodes` nodes would take in `runtime`.
pub fn estimate(nodes: u64, runtime: &str) -> Footprint {
    let node = per_node(runtime);
    Footprint {
        memory: FIXED.memory + nodes * node.memory,
        tasks: FIXED.tasks + nodes * node.tasks,
    }
}

/// The largest lab that fits `machine` in `runtime`.
pub fn largest(machine: &Machine, runtime: &str) -> u64 {
    let node = per_node(runtime);
    let memory = (machine.memory as f64 * MEMORY_SHARE) as u64;
    let by_memory = memory.saturating_sub(FIXED.memory) / node.memory;
    let by_tasks = machine
        .tasks
        .map_or(u64::MAX, |t| t.saturating_sub(FIXED.tasks) / node.tasks);
    by_memory.min(by_tasks)
}

/// Whether a lab of `nodes` nodes fits `machine` in `runtime`; if not, why, in words.
pub fn check(nodes: u64, runtime: &str, machine: &Machine) -> Result<(), String> {
    let need = estimate(nodes, runtime);
    let fits = largest(machine, runtime);
    if nodes <= fits {
        return Ok(());
    }
    let node = per_node(runtime);
    let unit = if runtime == "docker" {
        "container"
    } else {
        "process"
    };
    let mut why = format!(
        "a lab of {nodes} nodes would take about {} MiB ({nodes} × {} MiB per node {unit}, \
         plus {} MiB for the bootstrap and the nameserver) and {} tasks",
        need.memory / MIB,
        node.memory / MIB,
        FIXED.memory / MIB,
        need.tasks
    );
    why.push_str(&format!(
        "; this machine has {} MiB available (a lab may take {} % of it)",
        machine.memory / MIB,
        (MEMORY_SHARE * 100.0) as u32
    ));
    if let Some(tasks) = machine.tasks {
        why.push_str(&format!(" and room for {tasks} more tasks"));
    }
    why.push_str(&format!(
        ". The largest lab that fits is about {fits} nodes; `labctl sim` runs any size, and \
         `--force` starts this one anyway"
    ));
    Err(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn a_lab_fits_up_to_the_largest_and_not_one_node_more() {
        let machine = Machine {
            memory: 24 * GIB,
            tasks: Some(100_000),
        };
        for runtime in ["process", "docker"] {
            let fits = largest(&machine, runtime);
            assert!(fits > 60, "{runtime}: a classroom lab fits: {fits}");
            assert_eq!(check(fits, runtime, &machine), Ok(()));
            let refused = check(fits + 1, runtime, &machine).unwrap_err();
            assert!(
                refused.contains(&format!("about {fits} nodes")) && refused.contains("--force"),
                "{refused}"
            );
            // The estimate fits the share of memory, one more node does not.
            let share = (machine.memory as f64 * MEMORY_SHARE) as u64;
            assert!(estimate(fits, runtime).memory <= share);
            assert!(estimate(fits + 1, runtime).memory > share);
        }
    }

    #[test]
    fn tasks_can_be_the_limit() {
        let machine = Machine {
            memory: 64 * GIB,
            tasks: Some(FIXED.tasks + 10 * 8),
        };
        assert_eq!(largest(&machine, "process"), 10);
        let refused = check(100_000, "process", &machine).unwrap_err();
        assert!(refused.contains("a lab of 100000 nodes"), "{refused}");
        assert!(refused.contains("room for 96 more tasks"), "{refused}");
    }

    #[test]
    fn this_machine_is_read() {
        let here = Machine::here().expect("Linux's /proc");
        assert!(here.memory > 0);
    }
}
