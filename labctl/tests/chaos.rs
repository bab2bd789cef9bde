//! `labctl chaos` (SPEC §8) end to end in the process runtime: every shipped scenario gets the
//! verdict its `# expect:` line states; the run folder holds its four files, the history parses
//! line by line and `--check` judges it again the same way; the timeline has a lane per node;
//! the lab is gone afterwards. Malformed scenarios are refused with their line, exit 2, and start
//! nothing.

mod common;
#[allow(dead_code)]
mod live_util;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use labctl_chaos::history::{self, Type, F};
use labctl_chaos::report::{Report, Verdict};
use live_util::Home;

/// One chaos run at a time: each starts a lab and times failovers on two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// The verdict a shipped scenario's `# expect:` line states.
fn expected(text: &str) -> Verdict {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .expect("every shipped scenario states its expected verdict");
    match line.trim() {
        "valid" => Verdict::Valid,
        "invalid" => Verdict::Invalid,
        other => panic!("unknown expected verdict {other:?}"),
    }
}

/// A copy of scenario `name` in `home`, its topology path made absolute and its name prefixed
/// with `prefix` (lab names are global to a Docker engine).
pub fn scenario_copy(home: &Home, name: &str, prefix: &str) -> (PathBuf, String) {
    let source = scenarios_dir().join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&source).unwrap();
    let topologies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies/");
    let text = text
        .replace("\"../topologies/", &format!("\"{}", topologies.display()))
        .replace(
            &format!("name = \"{name}\""),
            &format!("name = \"{prefix}{name}\""),
        );
    let file = home.path().join(format!("{name}.toml"));
    std::fs::write(&file, &text).unwrap();
    (file, text)
}

/// Run a shipped scenario in `runtime` and check everything about the run.
pub fn run_shipped(name: &str, runtime: &str, prefix: &str) -> Report {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let home = Home::with_runtime(if runtime == "docker" {
        "docker"
    } else {
        "process"
    });
    let (file, text) = scenario_copy(&home, name, prefix);
    let run = home.labctl(&[
        "chaos",
        file.to_str().unwrap(),
        "--runtime",
        runtime,
        "--json",
    ]);
    let report: Report = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nstdout: {}\nstderr: {}",
            run.command, run.stdout, run.stderr
        )
    });
    let want = expected(&text);
    assert_eq!(
        report.verdict,
        want,
        "{name}: {}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    let code = match want {
        Verdict::Valid => 0,
        Verdict::Invalid => 1,
        Verdict::Unknown => 2,
    };
    assert_eq!(run.code, Some(code), "{}: {}", run.command, run.stderr);
    assert!(report.ops.ok > 100, "{name}: {:?}", report.ops);

    // The run folder: kept under $LABCTL_HOME/runs/ since the lab was removed.
    let folder = PathBuf::from(&report.run);
    assert!(folder.starts_with(home.path().join("runs")), "{folder:?}");
    for file in [
        "scenario.toml",
        "history.jsonl",
        "report.json",
        "timeline.svg",
    ] {
        assert!(
            folder.join(file).is_file(),
            "{name}: no {file} in {folder:?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(folder.join("scenario.toml")).unwrap(),
        text
    );
    let on_disk: Report =
        serde_json::from_str(&std::fs::read_to_string(folder.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk, report);

    // The history parses line by line, is in time order, and holds what the run did.
    let text = std::fs::read_to_string(folder.join("history.jsonl")).unwrap();
    for (i, line) in text.lines().enumerate() {
        serde_json::from_str::<history::Op>(line)
            .unwrap_or_else(|e| panic!("{name}: history line {}: {e}: {line}", i + 1));
    }
    let ops = history::parse(&text).unwrap();
    assert!(ops.windows(2).all(|w| w[0].time_ms <= w[1].time_ms));
    let nemesis_ok = ops
        .iter()
        .filter(|o| o.f == F::Fault && o.kind == Type::Ok)
        .count();
    assert_eq!(nemesis_ok, report.faults.len(), "{name}");
    assert!(
        ops.iter().any(|o| o.f == F::Epoch),
        "{name}: no epoch lines"
    );
    assert!(
        ops.iter()
            .any(|o| o.f == F::FinalRead && o.kind == Type::Ok),
        "{name}: no final read"
    );

    // The timeline: well formed, one lane per node.
    let svg = std::fs::read_to_string(folder.join("timeline.svg")).unwrap();
    let document = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{name}: {e}"));
    let lanes: Vec<&str> = document
        .descendants()
        .filter(|n| n.attribute("class") == Some("lane"))
        .filter_map(|n| n.attribute("data-node"))
        .collect();
    let nodes: std::collections::BTreeSet<u64> = ops
        .iter()
        .filter(|o| o.f == F::Epoch)
        .filter_map(|o| o.node)
        .collect();
    assert_eq!(lanes.len(), nodes.len(), "{name}: lanes {lanes:?}");

    // `--check` judges the recorded history alone the same way.
    let again = home.labctl(&[
        "chaos",
        "--check",
        folder.join("history.jsonl").to_str().unwrap(),
        "--json",
    ]);
    let again: Report = serde_json::from_str(again.stdout.trim()).unwrap();
    assert_eq!(
        (again.verdict, &again.anomalies, again.ops),
        (report.verdict, &report.anomalies, report.ops)
    );

    // Nothing left running.
    let labs = home.path().join("labs");
    let left: Vec<_> = std::fs::read_dir(&labs)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{name}: labs left: {left:?}");
    report
}

#[test]
fn writer_kill_is_valid_and_fails_over_in_time() {
    let report = run_shipped("writer-kill", "process", "");
    assert_eq!(report.failovers_ms.len(), 1, "{report:?}");
    let kill = &report.faults[0];
    assert_eq!(kill.fault.action(), "kill");
    assert!(
        kill.detected_ms.is_some() && kill.new_leader_ms.is_some(),
        "{kill:?}"
    );
}

#[test]
fn writer_pause_is_valid() {
    run_shipped("writer-pause", "process", "");
}

#[test]
fn ring6_partition_is_valid() {
    run_shipped("ring6-partition", "process", "");
}

#[test]
fn leader_isolated_is_valid() {
    run_shipped("leader-isolated", "process", "");
}

#[test]
fn rolling_restarts_are_valid() {
    let report = run_shipped("rolling-restarts", "process", "");
    // Six restarts and the final heal.
    assert_eq!(report.faults.len(), 7, "{:?}", report.faults);
}

#[test]
fn a_flapping_link_is_valid() {
    run_shipped("flapping-link", "process", "");
}

#[test]
fn random_faults_on_random30_are_valid() {
    let report = run_shipped("random30", "process", "");
    assert!(report.faults.len() >= 8, "{:?}", report.faults);
}

#[test]
fn replicas_loses_acknowledged_writes_and_majority_does_not() {
    let report = run_shipped("replicas-loses-writes", "process", "");
    let lost = report
        .anomalies
        .get(&labctl_chaos::report::Kind::Lost)
        .expect("lost writes");
    assert!(!lost.is_empty());
    run_shipped("majority-survives-partition", "process", "");
}

/// `labctl chaos FILE` on a malformed scenario: exit 2, the file and line named, nothing started.
fn refused(body: &str, line: usize, says: &str) {
    let home = Home::new();
    let file = home.path().join("bad.toml");
    let ring6 = common::topology_file("ring6.toml");
    let text = body.replace("RING6", ring6.to_str().unwrap());
    std::fs::write(&file, text).unwrap();
    let run = home.labctl(&["chaos", file.to_str().unwrap(), "--runtime", "process"]);
    assert_eq!(run.code, Some(2), "{}: {}", run.command, run.stderr);
    let expected = format!("labctl: {}:{line}: ", file.display());
    assert!(
        run.stderr.starts_with(&expected) && run.stderr.contains(says),
        "{}: stderr {:?} should start {expected:?} and say {says:?}",
        run.command,
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    for folder in ["labs", "runs"] {
        let started: Vec<_> = std::fs::read_dir(home.path().join(folder))
            .map(|d| d.filter_map(Result::ok).collect())
            .unwrap_or_default();
        assert!(started.is_empty(), "{}: {folder} {started:?}", run.command);
    }
}

const HEAD: &str = "name = \"bad\"\ntopology = \"RING6\"\nduration_s = 10\n";

#[test]
fn an_unknown_action_is_refused_with_its_line() {
    refused(
        &format!("{HEAD}\n[[fault]]\nat_s = 2\naction = \"explode\"\nnode = 1\n"),
        5,
        "unknown action \"explode\"",
    );
}

#[test]
fn a_fault_after_duration_s_is_refused() {
    refused(
        &format!("{HEAD}[[fault]]\nat_s = 12\naction = \"kill\"\nnode = 1\n"),
        4,
        "comes after duration_s",
    );
}

#[test]
fn a_group_naming_an_unknown_node_is_refused() {
    refused(
        &format!(
            "{HEAD}[[fault]]\nat_s = 2\naction = \"partition\"\ngroups = [[1, 2], [3, 4, 5, 6, 7]]\n"
        ),
        4,
        "node 7 is not in lab ring6",
    );
}

#[test]
fn a_missing_topology_is_refused() {
    refused(
        "name = \"bad\"\nduration_s = 10\ntopology = \"no-such-topology.toml\"\n",
        3,
        "no-such-topology.toml",
    );
}

#[test]
fn a_history_that_loses_a_write_is_judged_invalid_alone() {
    // A hand-made history: client 0's write acknowledged, the final read without it.
    let home = Home::new();
    let file = home.path().join("history.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"time_ms":1,"process":0,"type":"invoke","f":"write","value":"a"}"#,
            "\n",
            r#"{"time_ms":5,"process":0,"type":"ok","f":"write","value":"a","node":4}"#,
            "\n",
            r#"{"time_ms":9,"process":"lab","type":"ok","f":"converge","value":null}"#,
            "\n",
            r#"{"time_ms":10,"process":"lab","type":"invoke","f":"final-read","value":null,"node":4}"#,
            "\n",
            r#"{"time_ms":11,"process":"lab","type":"ok","f":"final-read","value":[],"node":4}"#,
            "\n",
        ),
    )
    .unwrap();
    let run = home.labctl(&["chaos", "--check", file.to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(
        run.stdout.contains("INVALID") && run.stdout.contains("lost (1)"),
        "{}",
        run.stdout
    );
    // A damaged line is named.
    std::fs::write(&file, "{\"time_ms\":1}\n").unwrap();
    let run = home.labctl(&["chaos", "--check", file.to_str().unwrap()]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains(&format!("{}:1: ", file.display())),
        "{}",
        run.stderr
    );
}

/// In the Docker runtime: the writer killed (the container), and a partition that disconnects
/// the links' networks for real. Lab names carry the test's pid (container names are global).
#[test]
fn docker_writer_kill_is_valid() {
    common::lab_image();
    let report = run_shipped(
        "writer-kill",
        "docker",
        &format!("t{}-", std::process::id()),
    );
    assert_eq!(report.failovers_ms.len(), 1, "{report:?}");
    assert!(live_util::labelled_in_engine_now(&report.lab).is_empty());
}

#[test]
fn docker_ring6_partition_is_valid() {
    common::lab_image();
    let report = run_shipped(
        "ring6-partition",
        "docker",
        &format!("t{}-", std::process::id()),
    );
    assert!(live_util::labelled_in_engine_now(&report.lab).is_empty());
}

#[test]
fn a_scenario_on_a_running_lab_leaves_it_running() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let home = Home::new();
    home.up(&common::topology_file("ring6.toml"), &[]);
    let file = home.path().join("on-ring6.toml");
    std::fs::write(
        &file,
        "name = \"on-ring6\"\nlab = \"ring6\"\nduration_s = 8\n[[fault]]\nat_s = 2\n\
         action = \"kill\"\nnode = 3\n[[fault]]\nat_s = 5\naction = \"restart\"\nnode = \"last\"\n",
    )
    .unwrap();
    for _ in 0..2 {
        let run = home.labctl(&["chaos", file.to_str().unwrap(), "--json"]);
        let report: Report = serde_json::from_str(run.stdout.trim())
            .unwrap_or_else(|e| panic!("{e}: {} {}", run.stdout, run.stderr));
        assert_eq!(report.verdict, Verdict::Valid, "{report:?}");
        assert_eq!(report.lab, "ring6");
        assert!(
            Path::new(&report.run).starts_with(home.lab_folder("ring6").join("runs")),
            "{}",
            report.run
        );
        // Still running, whole again.
        let status = home.status("ring6");
        assert!(status.report.converged, "{status:?}");
    }
    // A scenario that would start a lab under the running one's name is not run (unknown,
    // exit 2, the reason in the report) and leaves that lab alone.
    let clash = home.path().join("clash.toml");
    std::fs::write(
        &clash,
        format!(
            "name = \"ring6\"\ntopology = \"{}\"\nduration_s = 5\n",
            common::topology_file("ring6.toml").display()
        ),
    )
    .unwrap();
    let run = home.labctl(&["chaos", clash.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let report: Report = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(report.verdict, Verdict::Unknown);
    assert!(
        report
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("exists already"),
        "{report:?}"
    );
    assert!(home.status("ring6").report.converged);
    // A scenario naming a node the running lab lacks is refused before anything happens.
    std::fs::write(
        &file,
        "name = \"on-ring6\"\nlab = \"ring6\"\nduration_s = 8\n[[fault]]\nat_s = 2\n\
         action = \"kill\"\nnode = 9\n",
    )
    .unwrap();
    let run = home.labctl(&["chaos", file.to_str().unwrap()]);
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    assert!(
        run.stderr.contains("node 9 is not in lab ring6"),
        "{}",
        run.stderr
    );
}
