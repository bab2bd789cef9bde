//! `labctl dashboard [NAME]`: the live dashboard of a running lab (SPEC §9), served on 127.0.0.1
//! by [`crate::dashboard::serve`] until Ctrl-C.

use anyhow::{Context, Result};

use crate::cli::DashboardArgs;
use crate::dashboard::serve;
use crate::lab::resolve;
use crate::Outcome;

pub fn run(args: &DashboardArgs) -> Result<Outcome> {
    let lab = resolve(args.name.as_deref())?;
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    tokio.block_on(async {
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let (address, served) = serve(lab.clone(), args.port, |_| {}, shutdown).await?;
        println!(
            "Dashboard of {}: http://{address}/  (Ctrl-C stops it; the lab keeps running)",
            lab.name
        );
        served
            .await
            .context("the dashboard stopped")?
            .context("serving the dashboard")?;
        Ok(Outcome::Done)
    })
}
