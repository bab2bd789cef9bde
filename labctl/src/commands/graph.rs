//! `labctl graph FILE`: show a topology as text or Graphviz DOT.

use std::io::Write;

use anyhow::Result;
use labctl_topology::{render, Topology};

use crate::cli::{GraphArgs, GraphFormat};
use crate::Outcome;

pub fn run(args: &GraphArgs) -> Result<Outcome> {
    let topology = Topology::from_path(&args.file)?;
    let text = match args.format {
        GraphFormat::Ascii => render::ascii(&topology),
        GraphFormat::Dot => render::dot(&topology),
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(stdout)?;
    }
    Ok(Outcome::Done)
}
