//! labctl's live dashboard (SPEC §9): a local web page that shows a running lab as it changes —
//! the graph with the tree and the roles, the epoch, the components, the faults in force, the
//! message counters and a history of epochs with failover times — with buttons that inject
//! every fault of SPEC §7 on the node or link clicked.
//!
//! The crate knows nothing of how a lab runs: [`server::serve`] takes any [`server::Lab`] that
//! can report (the JSON of `labctl status --json`) and apply one fault object. labctl supplies
//! one over its runtimes; the HTTP API is `GET /api/report`, `GET /api/events` (server-sent
//! `report` events, one each time the report changes) and `POST /api/faults`.
//!
//! - [`history`]: the epochs seen, with the time each failover took (pure).
//! - [`page`]: the page itself, one self-contained document (pure).
//! - [`server`]: the axum routes and the task that watches the lab.

pub mod history;
pub mod page;
pub mod server;
