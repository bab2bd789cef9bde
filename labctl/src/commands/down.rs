//! `labctl down [NAME | --all]`: stop a lab's processes or containers and remove its state.
//!
//! A lab is found by its folder (`lab.json` names what `up` started) and, when the folder is gone
//! (`rm -rf` by hand), by what it left running: daemons whose command lines name its folder, and
//! containers labelled with its folder. Only this home's labs are touched: another home's lab of
//! the same name carries another owner id.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cli::DownArgs;
use crate::lab::{all_labs, claim, resolve, LabDir};
use crate::{lifecycle, Outcome};

pub fn run(args: &DownArgs) -> Result<Outcome> {
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let labs = if args.all {
        let mut labs = all_labs()?;
        let known: BTreeSet<String> = labs.iter().map(|l| l.name.clone()).collect();
        for name in tokio.block_on(lifecycle::orphans())? {
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
            tokio.block_on(lifecycle::remove(&lab))?;
            "removed"
        } else {
            if !tokio.block_on(lifecycle::remove_orphan(&lab))? {
                return Err(lab.not_found());
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
