//! `labctl down [NAME | --all]`: stop a lab's processes and remove its state.

use std::io::Write;

use anyhow::{bail, Context, Result};

use crate::cli::DownArgs;
use crate::lab::{all_labs, resolve, LabDir};
use crate::runtime;
use crate::Outcome;

pub fn run(args: &DownArgs) -> Result<Outcome> {
    let labs = if args.all {
        all_labs()?
    } else {
        let lab = resolve(args.name.as_deref())?;
        if !lab.path.exists() {
            // No folder, but perhaps containers left by a lab whose folder was deleted.
            let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            if tokio.block_on(runtime::docker::sweep(&lab.name))? {
                writeln!(
                    std::io::stdout(),
                    "lab {} removed (containers only; it had no folder)",
                    lab.name
                )?;
                return Ok(Outcome::Done);
            }
            bail!("no lab named {:?}; `labctl ls` lists labs", lab.name);
        }
        vec![lab]
    };
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let mut stdout = std::io::stdout().lock();
    for lab in labs {
        tokio.block_on(remove(&lab))?;
        writeln!(stdout, "lab {} removed", lab.name)?;
    }
    Ok(Outcome::Done)
}

/// Stop everything the lab's record names, then delete its folder. Works on a lab whose
/// processes died, and (stopping nothing) on one whose record is damaged.
pub async fn remove(lab: &LabDir) -> Result<()> {
    if let Ok(record) = lab.load() {
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
    std::fs::remove_dir_all(&lab.path).with_context(|| format!("removing {}", lab.path.display()))
}
