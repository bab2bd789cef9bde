//! `labctl trace` (SPEC §9) from the simulator: the steps on a terminal, and the replay page in a
//! real headless browser (Debian's `chromium`, never skipped): loaded from a file with every
//! network request refused, stepped through with the buttons and the arrow keys, the iteration
//! shown changing; screenshots under `target/test-artifacts/`. And from a live process lab whose
//! writer was killed: both epochs told from the nodes' records, the new one matching the lab's
//! report.

mod common;
#[allow(dead_code)]
mod live_util;

use std::ffi::OsStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{labctl, topology_file};
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::Page as Cdp;
use live_util::{fault_on, settle_lab, Home};

#[test]
fn the_terminal_story_counts_match_the_simulators_report() {
    let file = topology_file("ring12-shuffled.toml");
    let trace = labctl(&[
        OsStr::new("trace"),
        file.as_os_str(),
        OsStr::new("--delivery"),
        OsStr::new("async"),
    ])
    .expect_success();
    let sim = labctl(&[
        OsStr::new("sim"),
        file.as_os_str(),
        OsStr::new("--delivery"),
        OsStr::new("async"),
        OsStr::new("--json"),
    ])
    .expect_success();
    let report: serde_json::Value = serde_json::from_str(sim.stdout.trim()).unwrap();
    let iterations = report["iterations"].as_u64().unwrap();
    // One block for setup, two per iteration, one for the tree.
    let steps = trace.stdout.matches("── step ").count() as u64;
    assert_eq!(steps, 2 + 2 * iterations, "{}", trace.stdout);
    let tree = report["messages"]["tree"].as_u64().unwrap();
    assert!(
        trace
            .stdout
            .contains(&format!("= {tree} messages (exactly 2m")),
        "{}",
        trace.stdout
    );
    let leader = report["leader"].as_u64().unwrap();
    assert!(trace.stdout.contains(&format!("Leader: {leader},")));
    // A file that is not there is an error, exit 2.
    let run = common::try_labctl(&["trace", "no-such-topology.toml"], None).unwrap();
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.starts_with("labctl: "), "{}", run.stderr);
}

#[test]
fn each_steps_picture_is_an_svg_file_with_every_node_and_link() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pictures");
    let file = topology_file("grid3x3.toml");
    let topology = common::load(&file);
    let run =
        labctl(&[OsStr::new("trace"), file.as_os_str(), OsStr::new("--json")]).expect_success();
    let story: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let iterations = story["elections"][0]["iterations"]
        .as_array()
        .unwrap()
        .len();
    labctl(&[
        OsStr::new("trace"),
        file.as_os_str(),
        OsStr::new("--svg"),
        out.as_os_str(),
    ])
    .expect_success();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected = vec![
        "epoch-1-setup.svg".to_string(),
        "epoch-1-tree.svg".to_string(),
    ];
    for i in 1..=iterations {
        expected.push(format!("epoch-1-iteration-{i}-down.svg"));
        expected.push(format!("epoch-1-iteration-{i}-up.svg"));
    }
    expected.sort();
    assert_eq!(names, expected);
    for name in &names {
        let svg = std::fs::read_to_string(out.join(name)).unwrap();
        let document = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{name}: {e}"));
        let circles = document
            .descendants()
            .filter(|n| n.has_tag_name("circle"))
            .count();
        let lines = document
            .descendants()
            .filter(|n| n.has_tag_name("line"))
            .count();
        assert_eq!(circles, topology.node_count(), "{name}");
        assert_eq!(lines, topology.links().len(), "{name}");
    }
}

#[test]
fn the_replay_page_steps_with_buttons_and_keys_offline() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("grid.html");
    let file = topology_file("grid4x4-shuffled.toml");
    labctl(&[
        OsStr::new("trace"),
        file.as_os_str(),
        OsStr::new("--delivery"),
        OsStr::new("async"),
        OsStr::new("--seed"),
        OsStr::new("3"),
        OsStr::new("--html"),
        page.as_os_str(),
    ])
    .expect_success();

    let profile = tempfile::tempdir().unwrap();
    // The network is off: every name resolves to nothing.
    let browser = common::headless_chromium(
        profile.path(),
        (1100, 900),
        &["--host-resolver-rules=MAP * ~NOTFOUND"],
    );
    let tab = browser.new_tab().unwrap();
    tab.set_default_timeout(Duration::from_secs(15));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    tab.add_event_listener(Arc::new(move |event: &Event| {
        if let Event::NetworkRequestWillBeSent(sent) = event {
            seen.lock().unwrap().push(sent.params.request.url.clone());
        }
    }))
    .unwrap();
    tab.navigate_to(&format!("file://{}", page.display()))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    let shown = |what: &str| -> String {
        let script = format!(
            "(function () {{ var s = document.querySelector('.step.shown'); return s ? (s.getAttribute('{what}') || '') : 'none'; }})()"
        );
        tab.evaluate(&script, false)
            .unwrap()
            .value
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    assert_eq!(shown("data-step"), "1");
    assert_eq!(shown("data-iteration"), "", "setup is no iteration");
    tab.find_element("#next").unwrap().click().unwrap();
    assert_eq!(shown("data-step"), "2");
    assert_eq!(shown("data-iteration"), "1");
    let first = tab
        .capture_screenshot(Cdp::CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    std::fs::write(common::artifacts().join("trace-iteration-1.png"), first).unwrap();
    // Two more with the arrow key: iteration 2 (every run of this graph takes at least two).
    tab.press_key("ArrowRight").unwrap();
    tab.press_key("ArrowRight").unwrap();
    assert_eq!(shown("data-step"), "4");
    assert_eq!(shown("data-iteration"), "2");
    tab.press_key("ArrowLeft").unwrap();
    assert_eq!(shown("data-step"), "3");
    tab.find_element("#previous").unwrap().click().unwrap();
    tab.find_element("#previous").unwrap().click().unwrap();
    tab.find_element("#previous").unwrap().click().unwrap();
    assert_eq!(shown("data-step"), "1", "previous stops at the first step");
    let picture = tab
        .capture_screenshot(Cdp::CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    std::fs::write(common::artifacts().join("trace-setup.png"), picture).unwrap();
    // Nothing but the file itself was asked for.
    let asked = requests.lock().unwrap().clone();
    assert!(
        asked.iter().all(|url| url.starts_with("file://")),
        "the page asked the network for {asked:?}"
    );
}

#[test]
fn a_live_labs_trace_replays_its_failover() {
    let home = Home::new();
    let file = topology_file("ring6.toml");
    let up = home.up(&file, &[]);
    assert_eq!(up.report.leader, Some(1));
    fault_on(&home, "ring6", &["kill", "leader"]);
    let after = settle_lab(&home, "ring6", &[(vec![2, 3, 4, 5, 6], Some(2), true)]);
    let report = &after.report;
    let epoch = report.epoch.expect("a quorum epoch");
    assert!(epoch > up.report.epoch.unwrap());

    let run = home.labctl(&["trace", "ring6", "--json"]).expect_code(0);
    assert!(
        run.stderr.contains("node 1 did not answer"),
        "the killed node's record is said to be missing: {}",
        run.stderr
    );
    let story: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert!(story["missing"]["1"].is_string(), "{story}");
    let elections = story["elections"].as_array().unwrap();
    let epochs: Vec<u64> = elections
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert!(
        epochs.contains(&up.report.epoch.unwrap()) && epochs.contains(&epoch),
        "both the first epoch and the failover's are told: {epochs:?}"
    );
    let new = elections
        .iter()
        .find(|e| e["epoch"] == epoch)
        .expect("the new epoch");
    // Why it started: a neighbour of the dead node saw its link fail.
    let cause = new["cause"].as_str().expect("the failover's cause");
    assert!(
        cause.contains("node 2:") || cause.contains("node 6:"),
        "{cause}"
    );
    assert!(cause.contains('1'), "{cause}");
    // The story's counts are the lab's own counters for that epoch.
    assert_eq!(new["leader"], 2);
    assert_eq!(new["members"], serde_json::json!([2, 3, 4, 5, 6]));
    assert_eq!(new["links"].as_array().unwrap().len(), 4);
    let setup = new["setup"].as_u64().unwrap();
    let per_iteration: Vec<u64> = new["iterations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["messages"].as_u64().unwrap())
        .collect();
    let mut phases = vec![setup];
    phases.extend(&per_iteration);
    assert_eq!(phases, report.election_phases, "{new}");
    assert_eq!(
        setup + per_iteration.iter().sum::<u64>(),
        report.messages.election
    );
    let shout = &new["shout"];
    assert_eq!(
        shout["q"].as_u64().unwrap() + shout["yes"].as_u64().unwrap(),
        report.messages.tree
    );
    let parents: std::collections::BTreeMap<String, Option<u64>> =
        serde_json::from_value(shout["parents"].clone()).unwrap();
    assert_eq!(parents, report.tree);
    let roles: std::collections::BTreeMap<String, Vec<labctl_core::Role>> =
        serde_json::from_value(new["roles"].clone()).unwrap();
    assert_eq!(roles, report.roles);

    // The replay page holds every epoch, each with its iterations numbered from 1.
    let out = home.path().join("failover.html");
    home.labctl(&[
        OsStr::new("trace"),
        OsStr::new("ring6"),
        OsStr::new("--html"),
        out.as_os_str(),
    ])
    .expect_code(0);
    let html = std::fs::read_to_string(&out).unwrap();
    for e in elections {
        let iterations = e["iterations"].as_array().unwrap().len();
        for i in 1..=iterations {
            let attrs = format!(r#"data-epoch="{}" data-iteration="{i}""#, e["epoch"]);
            assert_eq!(html.matches(&attrs).count(), 2, "{attrs}");
        }
    }
    assert!(html.contains("node 1 did not answer"));
    assert!(!html.contains("http://") && !html.contains("https://"));
}
