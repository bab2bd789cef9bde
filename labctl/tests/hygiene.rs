//! A lab on a shared host (issue 13): Ctrl-C during `up` rolls back at every stage, a lab whose
//! folder was deleted is still listed and removed, two `up`s of one name exclude each other, and
//! two labctl homes on one Docker engine never touch each other's lab of the same name.
//!
//! `up` holds at a named stage while `LABCTL_HOLD_AT` says so (and says so on stderr), which is
//! how these tests interrupt it at each stage deterministically.

mod common;
#[allow(dead_code)]
mod live_util;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{topology_file, LABCTL};
use live_util::{labelled_in_engine_now, Home};

/// The stages `up` holds at, in order.
const STAGES: [&str; 4] = ["prepare", "bootstrap", "nameserver", "nodes"];

/// How long `up` may take to reach a stage (a Docker stage creates networks and containers).
const REACH: Duration = Duration::from_secs(90);

/// A lab name unique to this test process and `base`.
fn lab_name(base: &str) -> String {
    format!("h{}-{base}", std::process::id())
}

/// `labctl up FILE --runtime RUNTIME --name NAME`, held at `stage`: returns the running child once
/// it said it holds there, and its stderr so far.
fn up_held(home: &Home, file: &str, runtime: &str, name: &str, stage: &str) -> (Child, String) {
    let mut command = Command::new(LABCTL);
    command
        .args(["up", topology_file(file).to_str().expect("a UTF-8 path")])
        .args(["--runtime", runtime, "--name", name])
        .env("LABCTL_HOME", home.path())
        .env("LABCTL_HOLD_AT", stage)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if runtime == "docker" {
        command.env("LABCTL_IMAGE", common::lab_image());
    }
    let mut child = command.spawn().expect("starting labctl up");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + REACH;
    let mut said = String::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                said.push_str(&line);
                said.push('\n');
                if line.contains(&format!("holding at stage {stage}")) {
                    // Keep draining stderr into the channel; the caller reads the rest.
                    std::thread::spawn(move || {
                        let rest: Vec<String> = rx.iter().collect();
                        rest
                    });
                    return (child, said);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("waiting for labctl up");
                panic!("labctl up ended ({status}) before stage {stage}: {said}");
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("labctl up did not reach stage {stage} within {REACH:?}: {said}");
        }
    }
}

/// SIGINT `child` and wait (bounded) for it to exit; its exit code.
fn interrupt(child: &mut Child) -> Option<i32> {
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("waiting for labctl up") {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("labctl up did not exit within 60 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ctrl-C at each stage of a process `up`: exit 130, no daemon of the lab left, no folder.
#[test]
fn ctrl_c_at_each_stage_of_a_process_up_leaves_nothing() {
    let home = Home::new();
    for stage in STAGES {
        let name = lab_name(stage);
        let (mut child, _) = up_held(&home, "ring6.toml", "process", &name, stage);
        assert!(
            !home.daemons().is_empty() || stage == "prepare",
            "at stage {stage} some daemon runs"
        );
        let code = interrupt(&mut child);
        let mut said = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut said);
        }
        assert_eq!(code, Some(130), "up interrupted at {stage} exits 130");
        let left = home.wait_gone(&home.daemons());
        assert!(
            left.is_empty(),
            "daemons left after Ctrl-C at {stage}: {left:?}"
        );
        assert!(
            !home.lab_folder(&name).exists(),
            "the folder of a lab interrupted at {stage} is removed"
        );
    }
    // Nothing is listed afterwards.
    assert!(
        home.ls().is_empty(),
        "ls after the rollbacks: {:?}",
        home.ls()
    );
}

/// Ctrl-C at each stage of a Docker `up`: exit 130, nothing labelled with the lab in the engine.
#[test]
fn ctrl_c_at_each_stage_of_a_docker_up_leaves_nothing() {
    common::lab_image();
    let home = Home::with_runtime("docker");
    for stage in STAGES {
        let name = lab_name(&format!("d{stage}"));
        let (mut child, _) = up_held(&home, "ring6.toml", "docker", &name, stage);
        let held = labelled_in_engine_now(&name);
        assert!(
            !held.is_empty(),
            "at stage {stage} the engine holds something of the lab"
        );
        assert_eq!(interrupt(&mut child), Some(130), "interrupted at {stage}");
        let left = labelled_in_engine_now(&name);
        assert!(left.is_empty(), "left after Ctrl-C at {stage}: {left:?}");
        assert!(!home.lab_folder(&name).exists(), "folder after {stage}");
    }
}

/// `rm -rf` of a running lab's folder: `ls` still lists the lab, `up` of the name is refused,
/// `down NAME` stops every daemon; with `down --all` the same for a second lab.
#[test]
fn a_lab_whose_folder_was_deleted_is_listed_and_removed() {
    let home = Home::new();
    for (name, down) in [
        ("orphan-a", vec!["down", "orphan-a"]),
        ("orphan-b", vec!["down", "--all"]),
    ] {
        home.up(&topology_file("ring6.toml"), &["--name", name]);
        let daemons = home.daemons();
        assert_eq!(daemons.len(), 8, "ring6 runs 8 daemons");
        std::fs::remove_dir_all(home.lab_folder(name)).expect("removing the lab's folder");

        let listed = home.ls();
        let line = listed
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("ls lists {name} without its folder: {listed:?}"));
        assert_eq!(line.state, "orphaned");
        assert_eq!(line.running, 8);
        assert_eq!(
            (line.nodes, line.processes),
            (6, 8),
            "6 node daemons of 8, told by their command lines"
        );

        let refused = home
            .labctl(&[
                "up",
                topology_file("ring6.toml").to_str().unwrap(),
                "--runtime",
                "process",
                "--name",
                name,
            ])
            .expect_error(&["folder was deleted", "labctl down"]);
        assert!(refused.contains(name), "{refused}");

        let out = home.labctl(&down).expect_success().stdout;
        assert!(out.contains(name), "{down:?} names the lab: {out}");
        let left = home.wait_gone(&daemons);
        assert!(left.is_empty(), "{down:?} left daemons {left:?}");
        assert!(home.ls().is_empty(), "ls after {down:?}");
    }
}

/// Two `up`s of one name at once: the second is refused at once, naming the first; so is a
/// `down` of the name while the first starts. Once the first is gone, the name is free.
#[test]
fn two_ups_of_one_name_exclude_each_other() {
    let home = Home::new();
    let name = "race";
    let (mut first, _) = up_held(&home, "ring6.toml", "process", name, "nameserver");
    let file = topology_file("ring6.toml");
    let file = file.to_str().unwrap();
    let second = home
        .labctl(&["up", file, "--runtime", "process", "--name", name])
        .expect_error(&["lab race is being started by another labctl (pid"]);
    assert!(second.contains(&first.id().to_string()), "{second}");
    home.labctl(&["down", name])
        .expect_error(&["lab race is being started by another labctl"]);
    assert_eq!(interrupt(&mut first), Some(130));
    home.up(&topology_file("ring6.toml"), &["--name", name]);
    home.labctl(&["down", name]).expect_success();
}

/// Two homes on one engine run a lab of the same name: the second `up` is refused, naming the
/// first home, and touches nothing of it; the second home's `down` never touches it either.
#[test]
fn two_homes_never_touch_each_others_lab_of_the_same_name() {
    common::lab_image();
    let first = Home::with_runtime("docker");
    let second = Home::with_runtime("docker");
    let name = lab_name("shared");
    let file = topology_file("ring6.toml");
    let up = first.up(&file, &["--name", &name]);
    let before = labelled_in_engine_now(&name);

    let refused = second
        .labctl(&[
            "up",
            file.to_str().unwrap(),
            "--runtime",
            "docker",
            "--name",
            &name,
        ])
        .expect_error(&["another labctl home", "LABCTL_HOME="]);
    assert!(
        refused.contains(&first.path().display().to_string()),
        "the refusal names the home that holds the lab: {refused}"
    );
    assert!(
        !second.lab_folder(&name).exists(),
        "a refused up keeps no folder"
    );
    second
        .labctl(&["down", &name])
        .expect_error(&["no lab named"]);
    second.labctl(&["down", "--all"]).expect_success();

    assert_eq!(
        labelled_in_engine_now(&name),
        before,
        "the first lab's objects are all there"
    );
    let after = first.status(&name);
    assert!(after.report.converged, "the first lab still converged");
    assert_eq!(after.report.leader, up.report.leader);
    assert!(after.addresses.values().all(|a| a.state == "running"));
    first.labctl(&["down", &name]).expect_success();
    assert!(labelled_in_engine_now(&name).is_empty());
}

/// What people read (`up`, `status`, `ls`, a node's log) is words and tables: no Rust debug text,
/// headers over aligned columns, ids in numeric order, the runtime's own noun, plurals right.
#[test]
fn human_output_reads_as_words_and_tables() {
    let home = Home::new();
    let debug_text = ["Some(", "None", "{ ", "Roles {", "Config {"];
    let clean = |what: &str, text: &str| {
        for bad in debug_text {
            assert!(
                !text.contains(bad),
                "{what} shows debug text {bad:?}:\n{text}"
            );
        }
    };

    // A pair has one link, said in the singular.
    let pair = topology_file("pair.toml");
    let up = home
        .labctl(&["up", pair.to_str().unwrap(), "--runtime", "process"])
        .expect_success()
        .stdout;
    clean("up", &up);
    assert!(up.starts_with("pair: 2 nodes, 1 link, epoch"), "{up}");

    // Twelve nodes: ids 10, 11 and 12 come after 9, as numbers.
    let ring = topology_file("ring12-shuffled.toml");
    home.labctl(&[
        "up",
        ring.to_str().unwrap(),
        "--runtime",
        "process",
        "--name",
        "r12",
    ])
    .expect_success();
    let status = home.labctl(&["status", "r12"]).expect_success().stdout;
    clean("status", &status);
    let header = status
        .lines()
        .position(|l| l.starts_with("NODE") && l.contains("STATE") && l.contains("ROLES"))
        .unwrap_or_else(|| panic!("status has a node table with a header:\n{status}"));
    let ids: Vec<u64> = status
        .lines()
        .skip(header + 1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            l.split_whitespace()
                .next()
                .unwrap()
                .parse()
                .expect("a node id")
        })
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids.len(), 12, "{status}");
    assert_eq!(ids, sorted, "node ids in numeric order:\n{status}");

    let ls = home.labctl(&["ls"]).expect_success().stdout;
    clean("ls", &ls);
    let lines: Vec<&str> = ls.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("RUNTIME"),
        "{ls}"
    );
    assert_eq!(lines.len(), 3, "a header and two labs:\n{ls}");
    // Columns line up: each column starts at the same place on every line.
    let column = |line: &str, word: &str| line.find(word).expect("a column");
    let state_at = column(lines[0], "STATE");
    for line in &lines[1..] {
        assert_eq!(column(line, "running"), state_at, "aligned:\n{ls}");
        assert!(
            line.contains("processes"),
            "the process runtime's noun:\n{ls}"
        );
    }

    // A node's log says its events in words.
    let log = std::fs::read_to_string(home.lab_folder("pair").join("logs/node-1.log"))
        .expect("node 1's log");
    clean("node 1's log", &log);
    assert!(log.contains("elected leader after"), "{log}");
}
