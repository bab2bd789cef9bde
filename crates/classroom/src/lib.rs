//! labctl's classroom views (SPEC §9), without I/O: what `labctl trace` and `labctl dashboard`
//! show.
//!
//! - [`story::Story::of`] reads a trace (the simulator's, or a live lab's nodes') and tells each
//!   election as the steps a teacher walks a class through: setup, each Yo-Yo iteration (every
//!   node's part, the edges' directions, the values going down, the answers and prunes coming
//!   up), the SHOUT+ wave, the roles; with the messages of each step.
//! - [`layout::Layout::of`] places a topology's nodes the way its shape is usually drawn.
//! - [`story::Election::pictures`] and [`picture::svg`] draw each step; [`html::page`] makes the
//!   offline replay page of a run.
//!
//! Work in progress (issue 12): the pictures of each step, the HTML replay and the dashboard
//! build on these two.

pub mod growth;
pub mod html;
pub mod layout;
pub mod picture;
pub mod story;
pub mod text;
