//! A one-node chat on loopback, for trying the pages in a browser and editing templates:
//!
//! ```text
//! cargo run -p labctl-web --example demo -- [ADDRESS] [TEMPLATES]
//! ```
//!
//! `ADDRESS` defaults to `127.0.0.1:8080`; with `TEMPLATES` (a folder such as `templates/`) the
//! pages are read from there at start-up instead of the copies built in. The data lives in a
//! temporary directory and is gone when the demo stops (Ctrl-C).

use std::sync::Arc;

use labctl_chat::ops::{AppError, Read, Reply, Write};
use labctl_chat::Store;
use labctl_core::log::Pos;
use labctl_web::{router, serve, Backend, WebConfig};
use tokio::sync::Mutex;

/// What a one-node lab's data plane does: one store, every read and write served locally.
struct OneNode(Mutex<Store>);

#[async_trait::async_trait]
impl Backend for OneNode {
    async fn read(&self, read: Read, _min: Pos) -> Result<Reply, AppError> {
        self.0.lock().await.query(&read)
    }

    async fn write(&self, write: Write, key: Option<String>) -> Result<(Reply, Pos), AppError> {
        let (reply, entry) = self.0.lock().await.execute_with_key(
            &write,
            key.as_deref(),
            1,
            time::OffsetDateTime::now_utc(),
        )?;
        Ok((reply, entry.pos()))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("chat.sqlite"))?;
    let mut config = WebConfig::new(b"demo secret: not for real labs".to_vec(), 1, "demo");
    config.templates = args.next().map(Into::into);
    let app = router(config, Arc::new(OneNode(Mutex::new(store))))?;
    let listener = tokio::net::TcpListener::bind(&address).await?;
    eprintln!("demo chat on http://{}", listener.local_addr()?);
    serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
