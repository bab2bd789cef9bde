use super::*;

/// ring6: 1-2-3-4-5-6-1.
fn ring6() -> Adjacency {
    let mut adjacency: Adjacency = (1..=6).map(|n| (n, BTreeSet::new())).collect();
    for n in 1..=6u64 {
        let m = n % 6 + 1;
        adjacency.get_mut(&n).unwrap().insert(m);
        adjacency.get_mut(&m).unwrap().insert(n);
    }
    adjacency
}

fn id(n: NodeId) -> Target {
    Target::Id(n)
}

fn apply(set: &mut InForce, fault: Fault) -> Result<Vec<(NodeId, NodeAction)>, FaultError> {
    set.apply(&fault, &ring6(), 1000)
}

#[test]
fn the_fault_object_reads_and_writes_as_spec_7_spells_it() {
    let cases = [
        (r#"{"action":"kill","node":3}"#, Fault::Kill { node: id(3) }),
        (
            r#"{"action":"restart","node":"leader"}"#,
            Fault::Restart {
                node: Target::LEADER,
            },
        ),
        (
            r#"{"action":"cut","a":1,"b":2}"#,
            Fault::Cut { a: id(1), b: id(2) },
        ),
        (
            r#"{"action":"partition","groups":[[1,2],[3,4,5,6]]}"#,
            Fault::Partition {
                groups: vec![vec![1, 2], vec![3, 4, 5, 6]],
            },
        ),
        (
            r#"{"action":"delay","a":1,"b":2,"ms":200}"#,
            Fault::Delay {
                a: id(1),
                b: id(2),
                ms: 200,
            },
        ),
        (
            r#"{"action":"loss","a":1,"b":2,"percent":20}"#,
            Fault::Loss {
                a: id(1),
                b: id(2),
                percent: 20,
            },
        ),
        (r#"{"action":"heal-all"}"#, Fault::HealAll),
    ];
    for (json, fault) in cases {
        assert_eq!(
            serde_json::from_str::<Fault>(json).unwrap(),
            fault,
            "{json}"
        );
        assert_eq!(serde_json::to_string(&fault).unwrap(), json);
    }
    for bad in [
        r#"{"action":"explode","node":3}"#,
        r#"{"action":"kill"}"#,
        r#"{"action":"kill","node":"boss"}"#,
        r#"{"action":"kill","node":3,"extra":1}"#,
    ] {
        assert!(serde_json::from_str::<Fault>(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_active_fault_carries_its_time_beside_the_fault_object() {
    let active = Active {
        fault: Fault::Kill { node: id(3) },
        since_unix_ms: 5,
    };
    assert_eq!(
        serde_json::to_string(&active).unwrap(),
        r#"{"action":"kill","node":3,"since_unix_ms":5}"#
    );
}

#[test]
fn targets_parse_from_the_command_line() {
    assert_eq!("4".parse::<Target>(), Ok(id(4)));
    assert_eq!("leader".parse::<Target>(), Ok(Target::LEADER));
    for bad in ["0", "-1", "x", "Leader", ""] {
        assert!(bad.parse::<Target>().is_err(), "{bad:?}");
    }
}

#[test]
fn leader_is_resolved_when_the_fault_is_applied() {
    let fault = Fault::Kill {
        node: Target::LEADER,
    };
    assert!(fault.names_leader());
    assert_eq!(fault.resolve(Some(2)), Ok(Fault::Kill { node: id(2) }));
    assert_eq!(fault.resolve(None), Err(FaultError::NoLeader));
    let mut set = InForce::default();
    assert_eq!(
        apply(&mut set, fault),
        Err(FaultError::NoLeader),
        "unresolved"
    );
}

#[test]
fn a_kill_makes_a_node_down_until_restarted() {
    let mut set = InForce::default();
    assert_eq!(
        apply(&mut set, Fault::Kill { node: id(3) }),
        Ok(vec![(3, NodeAction::Kill)])
    );
    assert_eq!(set.down(), BTreeSet::from([3]));
    let again = apply(&mut set, Fault::Kill { node: id(3) });
    assert!(matches!(again, Err(FaultError::NodeState { node: 3, .. })));
    assert_eq!(
        apply(&mut set, Fault::Restart { node: id(3) }),
        Ok(vec![(3, NodeAction::Restart)])
    );
    assert!(set.is_empty());
}

#[test]
fn pause_and_resume_pair_up() {
    let mut set = InForce::default();
    assert!(matches!(
        apply(&mut set, Fault::Resume { node: id(2) }),
        Err(FaultError::NodeState { .. })
    ));
    apply(&mut set, Fault::Pause { node: id(2) }).unwrap();
    assert!(apply(&mut set, Fault::Pause { node: id(2) }).is_err());
    assert_eq!(set.paused(), BTreeSet::from([2]));
    // A paused node can be killed: it is then down, not paused.
    apply(&mut set, Fault::Kill { node: id(2) }).unwrap();
    assert_eq!(
        (set.down(), set.paused()),
        (BTreeSet::from([2]), BTreeSet::new())
    );
}

#[test]
fn refusals_change_nothing() {
    let mut set = InForce::default();
    apply(&mut set, Fault::Cut { a: id(1), b: id(2) }).unwrap();
    let before = set.clone();
    let refused = [
        Fault::Kill { node: id(9) },
        Fault::Cut { a: id(1), b: id(3) },
        Fault::Cut { a: id(2), b: id(2) },
        Fault::Cut { a: id(2), b: id(1) },
        Fault::Heal { a: id(3), b: id(4) },
        Fault::Delay {
            a: id(1),
            b: id(2),
            ms: 0,
        },
        Fault::Loss {
            a: id(1),
            b: id(2),
            percent: 100,
        },
        Fault::Partition {
            groups: vec![vec![1, 2, 3], vec![3, 4, 5, 6]],
        },
        Fault::Partition {
            groups: vec![vec![1, 2], vec![3, 4, 5]],
        },
        Fault::Partition {
            groups: vec![vec![1, 2, 3, 4, 5, 6]],
        },
        Fault::Partition {
            groups: vec![vec![1, 2], vec![], vec![3, 4, 5, 6]],
        },
    ];
    for fault in refused {
        let result = apply(&mut set, fault.clone());
        assert!(result.is_err(), "{fault} was accepted");
        assert_eq!(set, before, "{fault} changed the set");
    }
}

#[test]
fn errors_say_what_is_wrong_and_what_would_do() {
    let mut set = InForce::default();
    let unknown = apply(&mut set, Fault::Kill { node: id(9) })
        .unwrap_err()
        .to_string();
    assert_eq!(
        unknown,
        "the lab has no node 9 (its nodes: 1, 2, 3, 4, 5, 6)"
    );
    let no_link = apply(&mut set, Fault::Cut { a: id(1), b: id(4) })
        .unwrap_err()
        .to_string();
    assert_eq!(
        no_link,
        "nodes 1 and 4 share no link (node 1's neighbours: 2, 6)"
    );
    let overlap = apply(
        &mut set,
        Fault::Partition {
            groups: vec![vec![1, 2, 3], vec![3, 4, 5, 6]],
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        overlap.contains("node 3 is in group 1 and in group 2"),
        "{overlap}"
    );
    let missing = apply(
        &mut set,
        Fault::Partition {
            groups: vec![vec![1, 2], vec![3, 4]],
        },
    )
    .unwrap_err()
    .to_string();
    assert!(missing.contains("5, 6 are in no group"), "{missing}");
}

#[test]
fn a_partition_cuts_every_link_between_its_groups() {
    let mut set = InForce::default();
    apply(
        &mut set,
        Fault::Partition {
            groups: vec![vec![2, 1], vec![3, 4, 5, 6]],
        },
    )
    .unwrap();
    assert_eq!(set.cut_links(&ring6()), BTreeSet::from([(1, 6), (2, 3)]));
    assert_eq!(
        set.components(&ring6()),
        vec![BTreeSet::from([1, 2]), BTreeSet::from([3, 4, 5, 6])]
    );
    // Its links are healed with the whole partition only.
    let heal = apply(&mut set, Fault::Heal { a: id(2), b: id(3) });
    assert!(
        matches!(heal, Err(FaultError::CutByPartition { .. })),
        "{heal:?}"
    );
    assert!(apply(&mut set, Fault::Cut { a: id(3), b: id(2) }).is_err());
    assert!(apply(
        &mut set,
        Fault::Partition {
            groups: vec![vec![1], vec![2, 3, 4, 5, 6]]
        }
    )
    .is_err());
    apply(&mut set, Fault::HealAll).unwrap();
    assert_eq!(set.components(&ring6()), vec![(1..=6).collect()]);
}

#[test]
fn components_leave_out_down_and_paused_nodes_and_cut_links() {
    let mut set = InForce::default();
    apply(&mut set, Fault::Kill { node: id(1) }).unwrap();
    apply(&mut set, Fault::Pause { node: id(4) }).unwrap();
    assert_eq!(
        set.components(&ring6()),
        vec![BTreeSet::from([2, 3]), BTreeSet::from([5, 6])]
    );
    apply(&mut set, Fault::Cut { a: id(2), b: id(3) }).unwrap();
    assert_eq!(set.components(&ring6()).len(), 3);
}

#[test]
fn heal_undoes_every_fault_on_its_link_and_heal_all_everything() {
    let mut set = InForce::default();
    apply(
        &mut set,
        Fault::Delay {
            a: id(1),
            b: id(2),
            ms: 200,
        },
    )
    .unwrap();
    apply(
        &mut set,
        Fault::Loss {
            a: id(2),
            b: id(1),
            percent: 10,
        },
    )
    .unwrap();
    apply(&mut set, Fault::Cut { a: id(3), b: id(4) }).unwrap();
    apply(&mut set, Fault::Kill { node: id(5) }).unwrap();
    apply(&mut set, Fault::Pause { node: id(6) }).unwrap();
    assert_eq!(
        set.filter(1, &ring6()),
        BTreeMap::from([(
            2,
            LinkFilter {
                cut: false,
                delay_ms: 200,
                loss_percent: 10
            }
        )])
    );
    apply(&mut set, Fault::Heal { a: id(2), b: id(1) }).unwrap();
    assert!(set.filter(1, &ring6()).is_empty());
    assert_eq!(
        apply(&mut set, Fault::HealAll),
        Ok(vec![(6, NodeAction::Resume), (5, NodeAction::Restart)]),
        "thaw the frozen first, then start the dead"
    );
    assert!(set.is_empty());
}

#[test]
fn a_new_delay_on_a_link_replaces_the_old_one() {
    let mut set = InForce::default();
    apply(
        &mut set,
        Fault::Delay {
            a: id(1),
            b: id(2),
            ms: 200,
        },
    )
    .unwrap();
    apply(
        &mut set,
        Fault::Delay {
            a: id(2),
            b: id(1),
            ms: 50,
        },
    )
    .unwrap();
    assert_eq!(set.faults.len(), 1);
    assert_eq!(set.filter(2, &ring6())[&1].delay_ms, 50);
}

#[test]
fn a_cut_shows_in_both_ends_filters() {
    let mut set = InForce::default();
    apply(&mut set, Fault::Cut { a: id(4), b: id(3) }).unwrap();
    assert!(set.filter(3, &ring6())[&4].cut);
    assert!(set.filter(4, &ring6())[&3].cut);
    assert!(set.filter(1, &ring6()).is_empty());
}
