//! floatip: keeps a service IP on exactly one healthy host of a LAN.
//!
//! # Module map
//! Each room has one job (its file's first lines say it):
//! - [`cli`]: the command line: commands, client side, human rendering, doctor, demo, import, `up`/`down`.
//! - [`http`]: the HTTP edge (hyper): the status page ([`http::page`]), `/status.json`, and the
//!   Prometheus metrics ([`http::metrics`] renders them).
//! - [`text`]: words and times for people (clock, ages, an etcd instance's lines), shared by
//!   [`cli`] and [`http`] so that neither imports the other.
//! - [`daemon`]: one loop driving every VRRP instance's `vrrp::Instance`, executing its actions; it
//!   routes control calls to instances and starts the etcd instances.
//! - [`election`]: who owns a VIP besides the VRRP core: etcd (a lease-backed key), its timing rules
//!   and its status.
//! - [`guard`]: a separate process that removes the VIPs the moment the daemon dies or stops advancing.
//! - [`health`]: health checks (one file per kind), the witness, track files; run off the protocol loop.
//! - [`instance`]: what every instance has whatever elects it (today: the operator's overrides that
//!   survive a restart).
//! - [`hooks`]: notify scripts, run in order, one at a time per instance.
//! - [`conflict`]: sightings of another MAC answering for a VIP, and what a master does about them.
//! - [`net`]: the kernel edges: netlink addresses and link events, VRRP raw sockets, GARP/NA, ARP probes.
//! - [`control`]: the control socket: one protocol and one status model shared by daemon and CLI, and
//!   the event stream.
//! - [`config`]: the TOML file, validated into typed config with file:line errors; each key defined once.
//! - [`exec`]: bounded child processes (own process group, killed and reaped on overrun) for checks and hooks.
//! - [`service`]: living under systemd: logs, sd_notify, watchdog, capabilities.
//! - [`wakeup`]: the protocol loop's sleep (epoll with nanosecond deadlines) and doorbell.
//!
//! The words (owner, claim, speaker, clash, sighting, conflict, handoff) are defined in
//! `docs/glossary.md`.
//!
//! # Arrows
//! A room imports only rooms on lower lines:
//! ```text
//! cli                                           the user's side (`floatip run` starts the daemon)
//! daemon                                        the loop; routes control calls to instances
//! http                                          status page, status.json, metrics
//! election                                      who owns a VIP besides the VRRP core (etcd)
//! guard  health  hooks  conflict  text  service  wakeup  instance
//! net  control                                  the kernel edge; the shared protocol and status model
//! config  exec                                  typed config; bounded child processes
//! ```
//! So nothing below the CLI imports [`cli`] ([`http`] and [`cli`] share [`text`]), and [`config`]
//! imports no room that runs anything.
//!
//! # Where a newcomer adds
//! - **An election kind**: a room under `election/` beside `etcd/` (one task per instance, its own
//!   VIP claims, hooks and status), a variant of `config::Election` with its table validated in
//!   `config/validate/`, `election::take_*_instances` to take its instances out of the config, and
//!   its start-up, status and reload next to etcd's in `daemon/mod.rs`, `daemon/operator.rs` and
//!   `daemon/reload.rs`.
//! - **A check kind**: a file in `health/` (its probe), one arm in `health::run_once` and
//!   `health::describe`, its kind in `config/keys.rs`, its validation in `config/validate/check.rs`.
//! - **A config key**: one line in `config/keys.rs`, its field in `config/raw.rs` and
//!   `config/model.rs`, its check in `config/validate/`; `docs/config.md`'s tables are generated.
//! - **A CLI command**: a variant of `cli::Command`, one arm in `cli::run`, its own file in `cli/`
//!   when it is more than a call; one that asks the daemon adds a `control::Request` and its answer
//!   in `daemon/operator.rs`.

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
pub mod instance;
pub mod net;
pub mod service;
pub mod text;
pub mod wakeup;
