//! The seam between HTTP and the cluster.

use labctl_chat::ops::{AppError, Read, Reply, Write};
use labctl_core::log::Pos;

/// What the HTTP layer needs from the cluster: the node's data plane (or, in tests and in a
/// one-node lab, a store).
///
/// Permissions and existence are the backend's to check (the serving node knows the data); the
/// HTTP layer only maps its [`AppError`]s to status codes.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Serve a read at a node whose committed log holds `min`, the client's last write
    /// (read-your-writes, SPEC §4).
    async fn read(&self, read: Read, min: Pos) -> Result<Reply, AppError>;
    /// Serve a write at the writer; returns the reply and the write's log position. `key`, the
    /// client's `Idempotency-Key` scoped to its user, travels inside the log entry: a retry with
    /// the same key gets the first answer and is applied at most once.
    async fn write(&self, write: Write, key: Option<String>) -> Result<(Reply, Pos), AppError>;
}
