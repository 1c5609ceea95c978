//! floatip: keeps a service IP on exactly one healthy host of a LAN.
//!
//! Module map (who owns what):
//! - [`config`]: the TOML file, validated into typed config with file:line errors.
//! - [`net`]: the kernel edges: netlink addresses and link events, VRRP raw sockets, GARP/NA, ARP probes.
//! - [`daemon`]: one loop driving every instance's `vrrp::Instance`, executing its actions.
//! - [`cli`]: the command line.
//! - [`demo`]: `floatip demo`, a live failover in network namespaces.
//! - [`control`]: the control socket protocol (one definition for daemon and CLI), server and client.
//! - [`health`]: health checks (one file per kind) and the witness, run off the protocol loop.
//! - [`hooks`]: notify scripts, run in order, one at a time per instance.
//! - [`exec`]: bounded child processes (own process group, killed and reaped on overrun) for checks and hooks.
//! - [`conflict`]: what a master does when another MAC answers for its VIP.
//! - [`manual`]: `floatip up` / `down`, the seed's manual procedure made safe.

pub mod cli;
pub mod config;
pub mod conflict;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod doctor;
pub mod exec;
pub mod health;
pub mod hooks;
pub mod manual;
pub mod metrics;
pub mod net;
pub mod service;
pub mod wakeup;
