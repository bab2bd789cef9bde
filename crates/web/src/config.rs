//! How one input node's web service is set up.

use std::path::PathBuf;
use std::time::Duration;

use crate::hashing::HashPool;

/// The web service's settings.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// Lab-wide key: sessions (and CSRF tokens) signed at one input node verify at every other.
    pub secret: Vec<u8>,
    /// This node's id, shown in page footers and in every response's `X-Labctl-Node` header.
    pub node: u64,
    /// The lab's name, shown in page titles.
    pub lab: String,
    /// `None`: the templates embedded at build time; `Some(dir)`: load them from `dir` (for
    /// editing pages without rebuilding).
    pub templates: Option<PathBuf>,
    /// How long a session lasts after logging in.
    pub session_ttl: Duration,
    /// How long a request's body may take to arrive, whole: past it the answer is 408 and the
    /// connection is closed (a client that announces a body and goes silent holds nothing).
    pub body_timeout: Duration,
    /// The password hashers (registering, logging in): a fixed number of threads and a bounded
    /// queue; past it, 503 with `Retry-After`.
    pub hashing: HashPool,
}

impl WebConfig {
    /// The default session lifetime: 24 hours.
    pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);

    /// The default time a request body may take to arrive: 10 seconds.
    pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

    /// Settings with the embedded templates, 24-hour sessions, a 10-second body timeout and
    /// a pool of password hashers of its own ([`HashPool::per_core`]).
    pub fn new(secret: impl Into<Vec<u8>>, node: u64, lab: impl Into<String>) -> Self {
        WebConfig {
            secret: secret.into(),
            node,
            lab: lab.into(),
            templates: None,
            session_ttl: Self::DEFAULT_SESSION_TTL,
            body_timeout: Self::DEFAULT_BODY_TIMEOUT,
            hashing: HashPool::per_core(),
        }
    }
}
