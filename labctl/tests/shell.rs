//! `labctl shell` on a process lab: the command runs in the node's folder with the node's
//! variables, its exit code is labctl's, and an unknown lab or node is a clear error.

mod common;
// Shared with the other live tests; not every helper is used here.
#[allow(dead_code)]
mod live_util;

use common::topology_file;
use live_util::Home;

#[test]
fn a_process_node_shell_runs_in_its_folder_with_its_variables() {
    let home = Home::new();
    let lab = format!("t{}-shell", std::process::id());
    let up = home.up(&topology_file("pair.toml"), &["--name", &lab]);
    let node = up.addresses.keys().next().cloned().expect("a node");
    let address = &up.addresses[&node];

    let run = home
        .labctl(&[
            "shell",
            &lab,
            &node,
            "--",
            "sh",
            "-c",
            "echo $LABCTL_LAB $LABCTL_NODE $LABCTL_CONTROL $LABCTL_ADMIN; pwd",
        ])
        .expect_success();
    let folder = home.lab_folder(&lab).join("nodes").join(&node);
    assert_eq!(
        run.stdout,
        format!(
            "{lab} {node} {} {}\n{}\n",
            address.control.as_deref().expect("a control address"),
            address.admin,
            folder.canonicalize().expect("the node's folder").display()
        )
    );

    let code = home
        .labctl(&["shell", &lab, &node, "--", "sh", "-c", "exit 3"])
        .code;
    assert_eq!(code, Some(3), "the command's exit code is labctl's");

    home.labctl(&["shell", &lab, "99", "--", "true"])
        .expect_error(&["has no node 99", &lab]);
    home.labctl(&["shell", &lab, &node, "--root", "--", "true"])
        .expect_error(&["--root is for Docker labs"]);
    home.labctl(&["shell", &format!("{lab}-none"), "1", "--", "true"])
        .expect_error(&["no lab named"]);

    home.labctl(&["down", lab.as_str()]).expect_success();
}
