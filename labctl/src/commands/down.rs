//! `labctl down [NAME | --all]`: stop a lab's processes or containers and remove its state.
//!
//! A lab is found by its folder (`lab.json` names what `up` started) and, when the folder is gone
//! (`rm -rf` by hand), by what it left running: daemons whose command lines name its folder, and
//! containers labelled with its folder. Only this home's labs are touched: another home's lab of
//! the same name carries another owner id.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cli::DownArgs;
use crate::lab::{all_labs, claim, home, resolve, stray_daemons, LabDir};
use crate::runtime::{self, docker::Selector};
use crate::Outcome;

pub fn run(args: &DownArgs) -> Result<Outcome> {
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let labs = if args.all {
        let mut labs = all_labs()?;
        let known: BTreeSet<String> = labs.iter().map(|l| l.name.clone()).collect();
        for name in tokio.block_on(orphans())? {
            if !known.contains(&name) {
                labs.push(LabDir::new(&name)?);
            }
        }
        labs
    } else {
        vec![resolve(args.name.as_deref())?]
    };
    let mut stdout = std::io::stdout().lock();
    for lab in labs {
        let _claim = claim(&lab.name, "removed")?;
        let started = Instant::now();
        let what = if lab.path.exists() {
            tokio.block_on(remove(&lab))?;
            "removed"
        } else {
            if !tokio.block_on(remove_orphan(&lab))? {
                bail!("no lab named {:?}; `labctl ls` lists labs", lab.name);
            }
            "removed (it had no folder: its daemons and containers were found by their command \
             lines and labels)"
        };
        writeln!(
            stdout,
            "lab {} {what} in {:.1} s",
            lab.name,
            started.elapsed().as_secs_f64()
        )?;
    }
    Ok(Outcome::Done)
}

/// Stop everything the lab's record names, then delete its folder. Works on a lab whose
/// processes died, and (stopping what its daemons' command lines and its containers' labels
/// show) on one whose record is damaged.
pub async fn remove(lab: &LabDir) -> Result<()> {
    match lab.load() {
        Ok(record) => {
            let runtime = runtime::for_record(&record)?;
            runtime.stop(lab, &record).await?;
            let left: Vec<String> = runtime
                .alive(lab, &record)
                .await
                .into_iter()
                .filter(|(_, alive)| *alive)
                .map(|(label, _)| label)
                .collect();
            if !left.is_empty() {
                bail!(
                    "lab {}: {} would not stop; its folder {} is kept",
                    lab.name,
                    left.join(", "),
                    lab.path.display()
                );
            }
        }
        Err(_) => {
            remove_orphan(lab).await?;
        }
    }
    std::fs::remove_dir_all(&lab.path).with_context(|| format!("removing {}", lab.path.display()))
}

/// Stop the daemons and remove the containers of `lab` found without its record. Returns whether
/// there was anything.
async fn remove_orphan(lab: &LabDir) -> Result<bool> {
    let daemons = stray_daemons().into_iter().any(|d| d.lab == lab.name);
    if daemons {
        runtime::process::stop_strays(lab).await;
    }
    let containers = runtime::docker::sweep(&Selector::orphan(lab)).await?;
    Ok(daemons || containers)
}

/// The names of this home's labs whose folders are gone but whose daemons or containers remain.
pub async fn orphans() -> Result<BTreeSet<String>> {
    let root = home()?.join("labs");
    let mut names: BTreeSet<String> = stray_daemons().into_iter().map(|d| d.lab).collect();
    for lab in runtime::docker::engine_labs().await {
        let folder = lab.folder.as_deref().map(std::path::Path::new);
        if folder.is_some_and(|f| f.parent() == Some(root.as_path())) {
            names.insert(lab.lab);
        }
    }
    names.retain(|name| !root.join(name).join("lab.json").exists());
    Ok(names)
}
