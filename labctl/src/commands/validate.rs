//! `labctl validate FILE…`: check topology files.

use std::io::Write;

use anyhow::Result;
use labctl_topology::Topology;

use crate::cli::ValidateArgs;
use crate::render::plural;
use crate::Outcome;

pub fn run(args: &ValidateArgs) -> Result<Outcome> {
    let mut stdout = std::io::stdout().lock();
    for file in &args.files {
        let topology = Topology::from_path(file)?;
        writeln!(
            stdout,
            "{}: ok: lab {}, {}, {}, connected, smallest id {}",
            file.display(),
            topology.name,
            plural(topology.node_count(), "node"),
            plural(topology.link_count(), "link"),
            topology.min_id()
        )?;
    }
    Ok(Outcome::Done)
}
