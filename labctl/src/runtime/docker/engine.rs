//! Reaching the Docker engine, and saying plainly what went wrong when it cannot be reached.

use std::time::Duration;

use anyhow::{anyhow, Result};
use bollard::Docker;

/// How long `auto` waits for an engine to answer before choosing processes.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the engine is expected: `$DOCKER_HOST`, else the local socket.
pub fn where_() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

/// A client of the engine, speaking the engine's API version (this one may be older than
/// bollard's default), or an error that says what to do.
pub async fn connect() -> Result<Docker> {
    let docker = Docker::connect_with_defaults().map_err(|e| explain(e, "connecting"))?;
    let docker = tokio::time::timeout(PROBE_TIMEOUT * 5, docker.negotiate_version())
        .await
        .map_err(|_| {
            anyhow!(
                "the Docker engine at {} did not answer within {:?}; is it running? \
                 (`sudo systemctl start docker`), or use --runtime process",
                where_(),
                PROBE_TIMEOUT * 5
            )
        })?
        .map_err(|e| explain(e, "asking its version"))?;
    Ok(docker)
}

/// Whether an engine answers quickly (for `--runtime auto`).
pub async fn answers() -> bool {
    let Ok(docker) = Docker::connect_with_defaults() else {
        return false;
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, docker.ping()).await,
        Ok(Ok(_))
    )
}

/// Turn an engine error into one that names the cause and the remedy.
pub fn explain(error: bollard::errors::Error, doing: &str) -> anyhow::Error {
    use bollard::errors::Error as E;
    let text = error.to_string();
    let place = where_();
    let lower = text.to_lowercase();
    let advice = if matches!(error, E::SocketNotFoundError(_))
        || lower.contains("no such file")
        || lower.contains("connection refused")
    {
        format!(
            "no Docker engine answers at {place}: is it running? (`sudo systemctl start docker`), \
             or use --runtime process"
        )
    } else if lower.contains("permission denied") {
        format!(
            "permission denied on {place}: add yourself to the docker group \
             (`sudo usermod -aG docker $USER`, then log in again), or use --runtime process"
        )
    } else if lower.contains("pool overlaps") || lower.contains("address pools") {
        "the engine has no free addresses for the lab's networks (another network uses them): \
         `labctl down --all` removes old labs, or set LABCTL_DOCKER_POOL to a free private range \
         such as 10.211.0.0/16"
            .to_string()
    } else {
        return anyhow!(error).context(format!("Docker engine at {place}: {doing}"));
    };
    anyhow!("{advice} (while {doing}: {text})")
}
