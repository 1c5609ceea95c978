//! floatip: keeps a service IP on exactly one healthy host of a LAN.
//!
//! Module map (who owns what):
//! - [`cli`]: the command line: commands, client side, human rendering, doctor, demo, `up`/`down`.
//! - [`config`]: the TOML file, validated into typed config with file:line errors; each key defined once.
//! - [`control`]: the control socket: one protocol and one status model shared by daemon and CLI.
//! - [`daemon`]: one loop driving every instance's `vrrp::Instance`, executing its actions.
//! - [`health`]: health checks (one file per kind) and the witness, run off the protocol loop.
//! - [`hooks`]: notify scripts, run in order, one at a time per instance.
//! - [`exec`]: bounded child processes (own process group, killed and reaped on overrun) for checks and hooks.
//! - [`guard`]: a separate process that removes the VIPs the moment the daemon dies or stops advancing.
//! - [`conflict`]: what a master does when another MAC answers for its VIP.
//! - [`net`]: the kernel edges: netlink addresses and link events, VRRP raw sockets, GARP/NA, ARP probes.
//! - [`http`]: the HTTP edge (hyper): the status page ([`http::page`]), `/status.json`, and the
//!   Prometheus metrics ([`http::metrics`] renders them).
//! - [`service`]: living under systemd: logs, sd_notify, watchdog, capabilities.
//! - [`wakeup`]: the protocol loop's sleep (epoll with nanosecond deadlines) and doorbell.

pub mod cli;
pub mod config;
pub mod conflict;
pub mod control;
pub mod daemon;
pub mod election;
pub mod exec;
pub mod guard;
pub mod health;
pub mod hooks;
pub mod http;
pub mod net;
pub mod service;
pub mod text;
pub mod wakeup;
