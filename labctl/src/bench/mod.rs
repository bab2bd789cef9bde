//! Benchmarks of a running lab, behind `labctl bench`: each measures and hands back its figures;
//! the command prints them.
//!
//! - [`load`] loads the chat service (`bench http`); [`report`] is what it measured, and its text;
//! - [`failover`] times the writer's failover, from the kill to a write acknowledged again;
//! - [`dashboard`] times a node's state change to the dashboard's event.

pub mod dashboard;
pub mod failover;
pub mod load;
pub mod report;
