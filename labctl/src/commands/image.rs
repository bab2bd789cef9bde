//! `labctl image build`: build the lab image (labctl, static, `FROM scratch`) and print its tag.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result};

use crate::cli::{ImageArgs, ImageCommand};
use crate::runtime::docker::engine;
use crate::Outcome;

/// Run `labctl image …`.
pub fn run(args: &ImageArgs) -> Result<Outcome> {
    match &args.command {
        ImageCommand::Build(build) => {
            let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let tag = tokio.block_on(async {
                let docker = engine::connect().await?;
                crate::runtime::docker::image::ensure(
                    &docker,
                    build.force,
                    std::io::stderr().is_terminal(),
                )
                .await
            })?;
            writeln!(std::io::stdout(), "{tag}")?;
            Ok(Outcome::Done)
        }
    }
}
