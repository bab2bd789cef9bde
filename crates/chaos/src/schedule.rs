//! The schedule of a chaos run: the fixed steps and the random faults on one timeline.
//!
//! Random faults come one at a time: each is drawn at its time, holds for `hold_ms` and is then
//! undone (a killed node restarted, a paused one resumed, a cut, delay or loss healed, a
//! partition healed with `heal-all`); the next comes a random gap after the previous started
//! (on average `every_ms`, never before the previous is undone). The times come from the seed
//! alone; the targets are drawn when the fault is due, from the seed and the faults in force then
//! (a live node, a link not cut, a random split in two), so the same seed on the same lab gives
//! the same run.

use labctl_core::report::Adjacency;
use labctl_core::NodeId;
use labctl_fault::{Fault, InForce, Target};
use labctl_topology::rng::SplitMix64;

use crate::scenario::{Random, Scenario, Step};

/// The shortest time between a random fault's undoing and the next random fault.
pub const REST_MS: u64 = 500;

/// One entry of the timeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A fixed step of the scenario.
    Step(Step),
    /// Draw random fault number `n` (from 0) now.
    Random(usize),
    /// Undo random fault number `n`.
    Undo(usize),
}

/// The timeline: events in time order (milliseconds after the workload starts).
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// The events; at equal times fixed steps come first.
    pub events: Vec<(u64, Event)>,
}

impl Schedule {
    /// The schedule of `scenario`.
    pub fn of(scenario: &Scenario) -> Schedule {
        let mut events: Vec<(u64, Event)> = scenario
            .steps
            .iter()
            .map(|s| (s.at_ms, Event::Step(s.clone())))
            .collect();
        if let Some(random) = &scenario.random {
            for (n, at) in random_times(random, scenario.duration_ms)
                .into_iter()
                .enumerate()
            {
                events.push((at, Event::Random(n)));
                events.push((at + random.hold_ms, Event::Undo(n)));
            }
        }
        // A stable sort keeps fixed steps first among equal times.
        events.sort_by_key(|(at, event)| (*at, !matches!(event, Event::Step(_))));
        Schedule { events }
    }
}

/// When each random fault starts: gaps uniform in [every/2, 3·every/2), each fault undone before
/// the next, the last undone before the workload ends.
pub fn random_times(random: &Random, duration_ms: u64) -> Vec<u64> {
    // Its own stream for the times, so drawing targets does not move them.
    let mut rng = SplitMix64::new(random.seed ^ 0x7469_6d65); // "time"
    let mut times = Vec::new();
    let mut free_at = 0;
    let mut last_start = 0;
    loop {
        let gap = random.every_ms / 2 + rng.below(random.every_ms.max(1));
        let at = (last_start + gap).max(free_at);
        if at + random.hold_ms >= duration_ms {
            return times;
        }
        times.push(at);
        last_start = at;
        free_at = at + random.hold_ms + REST_MS;
    }
}

/// Draws random faults' targets.
pub struct RandomFaults {
    rng: SplitMix64,
    actions: Vec<String>,
}

impl RandomFaults {
    /// For `random`.
    pub fn new(random: &Random) -> RandomFaults {
        RandomFaults {
            rng: SplitMix64::new(random.seed),
            actions: random.actions.clone(),
        }
    }

    fn pick<T: Clone>(&mut self, from: &[T]) -> Option<T> {
        (!from.is_empty()).then(|| from[self.rng.below(from.len() as u64) as usize].clone())
    }

    /// The next fault and how to undo it, for a lab of `adjacency` with `in_force` in force;
    /// None when the drawn action has no target now (every node away, every link cut, a
    /// partition already in force).
    pub fn draw(&mut self, in_force: &InForce, adjacency: &Adjacency) -> Option<(Fault, Fault)> {
        let action = self.pick(&self.actions.clone())?;
        let away: Vec<NodeId> = in_force.down().union(&in_force.paused()).copied().collect();
        let live: Vec<NodeId> = adjacency
            .keys()
            .copied()
            .filter(|n| !away.contains(n))
            .collect();
        let cut = in_force.cut_links(adjacency);
        let links: Vec<(NodeId, NodeId)> = adjacency
            .iter()
            .flat_map(|(&a, bs)| bs.iter().filter(move |&&b| a < b).map(move |&b| (a, b)))
            .filter(|l| !cut.contains(l))
            .collect();
        let id = Target::Id;
        match action.as_str() {
            "kill" => {
                let node = id(self.pick(&live)?);
                Some((Fault::Kill { node }, Fault::Restart { node }))
            }
            "pause" => {
                let node = id(self.pick(&live)?);
                Some((Fault::Pause { node }, Fault::Resume { node }))
            }
            "cut" | "delay" | "loss" => {
                let (a, b) = self.pick(&links)?;
                let (a, b) = (id(a), id(b));
                let fault = match action.as_str() {
                    "cut" => Fault::Cut { a, b },
                    "delay" => Fault::Delay {
                        a,
                        b,
                        ms: 50 + self.rng.below(451),
                    },
                    _ => Fault::Loss {
                        a,
                        b,
                        percent: 10 + self.rng.below(41) as u32,
                    },
                };
                Some((fault, Fault::Heal { a, b }))
            }
            "partition" => {
                let in_partition = in_force
                    .faults
                    .iter()
                    .any(|f| matches!(f.fault, Fault::Partition { .. }));
                let nodes: Vec<NodeId> = adjacency.keys().copied().collect();
                if in_partition || nodes.len() < 2 {
                    return None;
                }
                // A coin per node; a split with an empty side is drawn again.
                loop {
                    let (mut one, mut other) = (Vec::new(), Vec::new());
                    for &n in &nodes {
                        if self.rng.below(2) == 0 {
                            one.push(n)
                        } else {
                            other.push(n)
                        }
                    }
                    if !one.is_empty() && !other.is_empty() {
                        return Some((
                            Fault::Partition {
                                groups: vec![one, other],
                            },
                            Fault::HealAll,
                        ));
                    }
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use labctl_topology::Topology;

    use super::*;

    fn scenario(text: &str) -> Scenario {
        Scenario::parse(text, "s.toml", Path::new(".")).unwrap()
    }

    const RANDOM: &str = "name = \"r\"\ntopology = \"t.toml\"\nduration_s = 30\n[[fault]]\nat_s = 0\naction = \"kill\"\nnode = 3\n[random]\nseed = 7\nactions = [\"kill\", \"pause\", \"cut\", \"partition\", \"delay\", \"loss\"]\nevery_s = 3\nhold_s = 2\n";

    #[test]
    fn random_faults_come_one_at_a_time_within_the_workload() {
        let s = scenario(RANDOM);
        let times = random_times(s.random.as_ref().unwrap(), s.duration_ms);
        assert!(times.len() >= 5, "{times:?}");
        for pair in times.windows(2) {
            assert!(pair[1] >= pair[0] + 2000 + REST_MS, "{times:?}");
        }
        assert!(times.last().unwrap() + 2000 < 30_000);
        let schedule = Schedule::of(&s);
        assert!(matches!(schedule.events[0], (0, Event::Step(_))));
        assert!(schedule.events.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(Schedule::of(&s), schedule, "the seed alone gives the times");
    }

    #[test]
    fn drawn_faults_apply_and_their_undoing_heals_them() {
        let topology = Topology::from_toml(
            "name = \"g\"\n[generate]\nshape = \"random\"\nn = 12\ndegree = 3\nseed = 5\n",
            "g.toml",
        )
        .unwrap();
        let adjacency = topology.adjacency();
        for seed in 0..50 {
            let mut s = scenario(RANDOM);
            s.random.as_mut().unwrap().seed = seed;
            let mut faults = RandomFaults::new(s.random.as_ref().unwrap());
            let mut in_force = InForce::default();
            let mut drawn = Vec::new();
            for _ in 0..20 {
                let Some((fault, undo)) = faults.draw(&in_force, &adjacency) else {
                    continue;
                };
                in_force
                    .apply(&fault, &adjacency, 0)
                    .unwrap_or_else(|e| panic!("seed {seed}: {fault}: {e}"));
                in_force
                    .apply(&undo, &adjacency, 0)
                    .unwrap_or_else(|e| panic!("seed {seed}: {undo}: {e}"));
                assert!(in_force.is_empty(), "seed {seed}: {undo} left {in_force:?}");
                drawn.push(fault);
            }
            assert!(drawn.len() >= 15, "seed {seed}: {drawn:?}");
            // The same seed draws the same faults.
            let mut again = RandomFaults::new(s.random.as_ref().unwrap());
            let first = again.draw(&InForce::default(), &adjacency).map(|(f, _)| f);
            assert_eq!(first.as_ref(), drawn.first(), "seed {seed}");
        }
    }

    #[test]
    fn nothing_to_draw_gives_none() {
        let topology =
            Topology::from_toml("name = \"p\"\nnodes = [1, 2]\nlinks = [[1, 2]]\n", "p.toml")
                .unwrap();
        let adjacency = topology.adjacency();
        let s = scenario("name = \"r\"\ntopology = \"t.toml\"\nduration_s = 30\n[random]\nseed = 1\nactions = [\"cut\"]\nevery_s = 3\nhold_s = 2\n");
        let mut faults = RandomFaults::new(s.random.as_ref().unwrap());
        let mut in_force = InForce::default();
        let (cut, _) = faults.draw(&in_force, &adjacency).unwrap();
        in_force.apply(&cut, &adjacency, 0).unwrap();
        assert_eq!(faults.draw(&in_force, &adjacency), None);
    }
}
