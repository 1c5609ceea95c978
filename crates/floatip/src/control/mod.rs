//! The control socket: one protocol and one status model shared by the daemon and the CLI.
//!
//! - [`protocol`]: requests, responses, their wire format (newline-delimited JSON, versioned).
//! - [`status`]: the status of an instance, as `floatip status --json` prints it.
//! - [`server`]: the daemon's socket (root-only) and how a request reaches the daemon loop.
//! - [`client`]: how the CLI asks.
//! - [`events`]: the event stream (`floatip events`): its records, the daemon's broadcaster, both ends.
//!
//! The CLI commands that use it and the human rendering of status live in [`crate::cli`].

pub mod client;
pub mod events;
pub mod protocol;
pub mod server;
pub mod status;

pub use client::*;
pub use protocol::*;
pub use server::*;
pub use status::*;
