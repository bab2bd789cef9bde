//! The seam between HTTP and the cluster.

use labctl_chat::ops::{AppError, Read, Reply, Write};

/// What the HTTP layer needs from the cluster: the node's data plane (or, in tests and in a
/// one-node lab, a store).
///
/// Permissions and existence are the backend's to check (the serving node knows the data); the
/// HTTP layer only maps its [`AppError`]s to status codes.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Serve a read at a node whose data is at least as new as `min_seq` (read-your-writes).
    async fn read(&self, read: Read, min_seq: u64) -> Result<Reply, AppError>;
    /// Serve a write at the writer; returns the reply and the write's log sequence number.
    async fn write(&self, write: Write) -> Result<(Reply, u64), AppError>;
}
