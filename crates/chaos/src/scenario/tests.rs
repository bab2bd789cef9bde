use std::path::Path;

use super::*;

const RING6: &str = r#"
name = "ring6"
nodes = [1, 2, 3, 4, 5, 6]
links = [[1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 1]]
"#;

fn ring6() -> Topology {
    Topology::from_toml(RING6, "ring6.toml").expect("a valid topology")
}

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    let scenario = Scenario::parse(text, "s.toml", Path::new("/scenarios"))?;
    scenario.check_against(&ring6(), "s.toml")?;
    Ok(scenario)
}

const GOOD: &str = r#"
name = "ring6-leader-kill"
topology = "../topologies/ring6.toml"
durability = "majority"
duration_s = 20

[workload]
clients = 4
rate = 40
writes = 50

[[fault]]
at_s = 5
action = "kill"
node = "leader"

[[fault]]
at_s = 10
action = "restart"
node = "last"

[[fault]]
at_s = 12
action = "partition"
groups = [[1, 2], [3, 4, 5, 6]]

[[fault]]
at_s = 14.5
action = "delay"
a = 1
b = 2
ms = 200

[random]
seed = 7
actions = ["kill", "pause", "cut", "partition"]
every_s = 3
hold_s = 2

[check]
converge_within_s = 10
failover_within_s = 2
"#;

#[test]
fn the_spec_example_reads() {
    let s = parse(GOOD).unwrap();
    assert_eq!(s.name, "ring6-leader-kill");
    assert_eq!(
        s.lab,
        LabSource::Topology(Path::new("/scenarios/../topologies/ring6.toml").into())
    );
    assert_eq!(s.durability, Some(Durability::Majority));
    assert_eq!(s.duration_ms, 20_000);
    assert_eq!(
        s.workload,
        Workload {
            clients: 4,
            rate: 40,
            writes: 50
        }
    );
    assert_eq!(s.steps.len(), 4);
    assert_eq!(s.steps[0].line, 12);
    assert_eq!(
        s.steps[1].action,
        Action::Node {
            verb: NodeVerb::Restart,
            node: StepTarget::Last
        }
    );
    assert_eq!(s.steps[3].at_ms, 14_500);
    let random = s.random.unwrap();
    assert_eq!(
        (random.seed, random.every_ms, random.hold_ms),
        (7, 3000, 2000)
    );
    assert_eq!(s.check.failover_within_ms, Some(2000));
}

#[test]
fn steps_resolve_leader_and_last() {
    let s = parse(GOOD).unwrap();
    let nodes = ring6().ids();
    assert!(s.steps[0].names_leader() && !s.steps[1].names_leader() && !s.steps[2].names_leader());
    let (kill, last) = s.steps[0].resolve(Some(3), None, &nodes).unwrap();
    assert_eq!(
        kill,
        Fault::Kill {
            node: Target::Id(3)
        }
    );
    let (restart, last) = s.steps[1].resolve(Some(1), last, &nodes).unwrap();
    assert_eq!(
        restart,
        Fault::Restart {
            node: Target::Id(3)
        }
    );
    assert_eq!(last, Some(3));
    assert!(s.steps[0]
        .resolve(None, None, &nodes)
        .unwrap_err()
        .contains("quorum"));
}

#[test]
fn isolate_is_one_node_against_the_rest() {
    let s = parse(
        "name = \"x\"\ntopology = \"t.toml\"\nduration_s = 5\n[[fault]]\nat_s = 1\naction = \"partition\"\nisolate = \"leader\"\n",
    )
    .unwrap();
    assert!(s.steps[0].names_leader());
    let (fault, last) = s.steps[0].resolve(Some(2), None, &ring6().ids()).unwrap();
    assert_eq!(
        fault,
        Fault::Partition {
            groups: vec![vec![2], vec![1, 3, 4, 5, 6]]
        }
    );
    assert_eq!(last, Some(2));
}

/// The error for `text`, which must name line `line` and say `says`.
fn refused(text: &str, line: Option<usize>, says: &str) {
    let err = parse(text).expect_err("must be refused");
    assert_eq!(err.line, line, "{err}");
    assert!(err.to_string().contains(says), "{err} should say {says:?}");
    assert!(err.to_string().starts_with("s.toml"), "{err}");
}

const HEAD: &str = "name = \"x\"\ntopology = \"t.toml\"\nduration_s = 20\n";

#[test]
fn an_unknown_action_is_refused_with_its_line() {
    refused(
        &format!("{HEAD}[[fault]]\nat_s = 1\naction = \"explode\"\nnode = 1\n"),
        Some(4),
        "unknown action \"explode\"",
    );
}

#[test]
fn a_fault_after_the_workload_is_refused() {
    refused(
        &format!("{HEAD}[[fault]]\nat_s = 1\naction = \"kill\"\nnode = 1\n[[fault]]\nat_s = 25\naction = \"restart\"\nnode = 1\n"),
        Some(8),
        "comes after duration_s",
    );
}

#[test]
fn a_group_naming_an_unknown_node_is_refused() {
    refused(
        &format!("{HEAD}\n[[fault]]\nat_s = 2\naction = \"partition\"\ngroups = [[1, 2, 9], [3, 4, 5, 6]]\n"),
        Some(5),
        "node 9 is not in lab ring6",
    );
}

#[test]
fn link_steps_need_a_link() {
    refused(
        &format!("{HEAD}[[fault]]\nat_s = 1\naction = \"cut\"\na = 1\nb = 4\n"),
        Some(4),
        "no link",
    );
}

#[test]
fn a_partition_must_hold_every_node() {
    refused(
        &format!("{HEAD}[[fault]]\nat_s = 1\naction = \"partition\"\ngroups = [[1, 2], [3, 4]]\n"),
        Some(4),
        "",
    );
    refused(
        &format!("{HEAD}[[fault]]\nat_s = 1\naction = \"partition\"\ngroups = [[1, 2], [2, 3, 4, 5, 6]]\n"),
        Some(4),
        "node 2 is in two groups",
    );
}

#[test]
fn fields_of_other_actions_and_typos_are_refused() {
    refused(
        &format!("{HEAD}[[fault]]\nat_s = 1\naction = \"kill\"\na = 1\n"),
        Some(4),
        "takes no `a`",
    );
    refused(
        &format!("{HEAD}[[fault]]\nat_s = 1\naction = \"kill\"\nnod = 1\n"),
        Some(7),
        "nod",
    );
    refused(
        &format!("{HEAD}durabilty = \"majority\"\n"),
        Some(4),
        "durabilty",
    );
}

#[test]
fn last_needs_a_previous_node() {
    refused(
        &format!("{HEAD}[[fault]]\nat_s = 1\naction = \"heal-all\"\n[[fault]]\nat_s = 2\naction = \"restart\"\nnode = \"last\"\n"),
        Some(7),
        "no previous step names one",
    );
}

#[test]
fn steps_go_in_time_order() {
    refused(
        &format!("{HEAD}[[fault]]\nat_s = 5\naction = \"kill\"\nnode = 1\n[[fault]]\nat_s = 2\naction = \"restart\"\nnode = 1\n"),
        Some(8),
        "time order",
    );
}

#[test]
fn the_lab_is_named_once() {
    refused("name = \"x\"\nduration_s = 5\n", None, "names no lab");
    refused(
        "name = \"x\"\ntopology = \"t.toml\"\nlab = \"ring6\"\nduration_s = 5\n",
        Some(3),
        "not both",
    );
    refused(
        "name = \"Bad Name\"\ntopology = \"t.toml\"\nduration_s = 5\n",
        Some(1),
        "not a valid lab name",
    );
}

#[test]
fn values_out_of_range_are_refused() {
    refused(
        "name = \"x\"\ntopology = \"t.toml\"\nduration_s = 0\n",
        Some(3),
        "duration_s",
    );
    refused(
        &format!("{HEAD}runtime = \"vm\"\n"),
        Some(4),
        "auto, process, docker",
    );
    refused(&format!("{HEAD}durability = \"some\"\n"), Some(4), "");
    refused(
        &format!("{HEAD}[workload]\nclients = 0\n"),
        Some(4),
        "clients = 0",
    );
    refused(
        &format!("{HEAD}[workload]\nwrites = 150\n"),
        Some(4),
        "percentage",
    );
    refused(
        &format!("{HEAD}[random]\nseed = 1\nactions = [\"heal\"]\nevery_s = 3\nhold_s = 2\n"),
        Some(4),
        "cannot be drawn",
    );
    refused(
        &format!("{HEAD}[random]\nseed = 1\nactions = [\"kill\"]\nevery_s = 3\nhold_s = 30\n"),
        Some(4),
        "no time",
    );
}

#[test]
fn a_missing_topology_is_named() {
    let dir = std::env::temp_dir().join(format!("chaos-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.toml");
    std::fs::write(
        &file,
        "name = \"x\"\nduration_s = 5\ntopology = \"nowhere.toml\"\n",
    )
    .unwrap();
    let err = Scenario::load(&file).unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
    assert!(err.to_string().contains("nowhere.toml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
