//! The command line: raw arguments (clap) to one of the commands, each returning an exit code.
//!
//! - [`commands`]: the commands that talk to a running daemon (status, takeover, release, auto, reload).
//! - [`render`]: `floatip status` for people.
//! - [`check`]: `floatip check`.
//! - [`assets`]: the man pages and shell completions generated from these definitions.
//! - [`manual`]: `floatip up` / `down`, the seed's manual procedure made safe.
//! - [`demo`]: `floatip demo`, a live failover in network namespaces.
//! - [`doctor`]: `floatip doctor`, the checklist of what commonly stops a floating IP from working.
//! - [`import`]: `floatip import keepalived`, a keepalived configuration to a floatip one.
//! - [`init`]: `floatip init`, a first configuration from what the LAN says today.
//!
//! A new command: a variant of [`Command`] (its help text is its doc), one arm in [`run`], and its
//! own file here when it is more than a call.

pub mod assets;
pub mod check;
pub mod commands;
pub mod demo;
pub mod doctor;
pub mod import;
pub mod init;
pub mod manual;
pub mod render;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::config;
use crate::service::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "floatip",
    version,
    about = "Keep a service IP on exactly one healthy host of a LAN (VRRP, keepalived-compatible)"
)]
pub struct Cli {
    /// Control socket of the daemon to talk to (overrides the config file's [daemon] socket).
    #[arg(long, global = true, env = "FLOATIP_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Log format for `run`: "text" (default) or "json" (also `floatip run --log-format`).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    #[command(subcommand)]
    pub command: Command,
}

/// The config file a command that talks to the daemon reads its `[daemon] socket` from.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DaemonConfig {
    /// The daemon's configuration file, to find its control socket ([daemon] socket); default
    /// /etc/floatip/floatip.toml when it exists. --socket overrides it.
    #[arg(long, short, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground.
    Run {
        #[arg(long, short, default_value = config::DEFAULT_PATH, value_name = "PATH")]
        config: PathBuf,
        /// Log format: "text" (default) or "json", for log shippers.
        #[arg(long, value_name = "FORMAT")]
        log_format: Option<LogFormat>,
    },
    /// Validate a configuration file and explain every error; touches nothing.
    Check {
        #[arg(long, short, default_value = config::DEFAULT_PATH, value_name = "PATH")]
        config: PathBuf,
    },
    /// State, owner, peers, checks and the history of transitions with their reasons.
    Status {
        /// One instance (default: all).
        name: Option<String>,
        /// Machine-readable output (documented in docs/status-json.md).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        daemon: DaemonConfig,
    },
    /// Become master of NAME now and stay preferred until `auto`.
    Takeover {
        name: String,
        #[command(flatten)]
        daemon: DaemonConfig,
    },
    /// Step down from NAME (make-before-break) and never claim it until `auto`.
    Release {
        name: String,
        /// Release even when no other router was heard (the VIP is left unowned).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        daemon: DaemonConfig,
    },
    /// Return NAME to the configured behaviour.
    Auto {
        name: String,
        #[command(flatten)]
        daemon: DaemonConfig,
    },
    /// Re-read the configuration file (like SIGHUP); a bad file is refused and the running one stays.
    ///
    /// The daemon re-reads the file it was started with; --config only says where its socket is.
    Reload {
        #[command(flatten)]
        daemon: DaemonConfig,
    },
    /// Stream every transition, priority change, conflict, clash and operator command as it happens,
    /// in order (the notify hooks' order), one line each, until the daemon stops or Ctrl-C.
    ///
    /// A stream that falls behind (256 events queued and not read, e.g. a stopped consumer) is never
    /// waited for: it gets one final "lagged: N events dropped" record and is closed (exit status 3);
    /// reconnect to go on.
    Events {
        /// One instance or group (default: all).
        name: Option<String>,
        /// One JSON object per line (kind, instance, group, from, to, priority, reason; see README).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        daemon: DaemonConfig,
    },
    /// Add an address by hand, safely: refuse if anyone answers for it, else add and announce it.
    Up {
        /// ADDR/LEN, e.g. 192.0.2.97/24
        address: String,
        #[arg(long, value_name = "IF")]
        dev: String,
        /// Gratuitous ARPs (or NAs) to send after adding it.
        #[arg(long, default_value_t = 3)]
        count: u32,
        #[command(flatten)]
        daemon: DaemonConfig,
    },
    /// Remove an address added by hand.
    Down {
        /// ADDR/LEN, e.g. 192.0.2.97/24
        address: String,
        #[arg(long, value_name = "IF")]
        dev: String,
        #[command(flatten)]
        daemon: DaemonConfig,
    },
    /// Check this host's setup and explain each failure with a fix: interfaces, adverts on the wire,
    /// who answers ARP for each VIP, sysctls, firewall rules.
    Doctor {
        #[arg(long, short, default_value = config::DEFAULT_PATH, value_name = "PATH")]
        config: PathBuf,
    },
    /// A live failover on this machine, in network namespaces (needs root).
    Demo,
    /// Write a first configuration for this host from what the LAN says today.
    ///
    /// The interface whose subnet holds the VIP, a VRID nobody uses (after listening for adverts),
    /// a probe that nobody answers for the VIP today (else it refuses and names the MAC), the
    /// priority, unicast with --peer; prints the command for the other host. Only listens and
    /// probes; never overwrites a file without --force.
    Init {
        /// The service address, ADDR/LEN, e.g. 192.0.2.97/24.
        #[arg(long, value_name = "ADDR/LEN")]
        vip: String,
        /// The other host's own address: adverts go there by unicast instead of multicast.
        #[arg(long, value_name = "ADDR")]
        peer: Option<std::net::IpAddr>,
        /// The instance name (logs, status, `floatip takeover NAME`).
        #[arg(long, default_value = "files", value_name = "NAME")]
        name: String,
        /// This host holds the address while healthy (priority 150; the default).
        #[arg(long, conflicts_with = "secondary")]
        primary: bool,
        /// This host takes over when the primary fails (priority 100).
        #[arg(long)]
        secondary: bool,
        /// Where to write the configuration.
        #[arg(long, short, default_value = config::DEFAULT_PATH, value_name = "PATH")]
        output: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
        /// How long to listen for VRRP adverts before choosing a VRID.
        #[arg(long, default_value = "3s", value_name = "DURATION", value_parser = parse_listen)]
        listen: std::time::Duration,
        /// Use this VRID (the mirror command passes the first host's); refused if someone else uses it.
        #[arg(long, value_name = "1-255", value_parser = clap::value_parser!(u8).range(1..=255))]
        vrid: Option<u8>,
    },
    /// Write the floatip configuration that behaves as another tool's (today: keepalived).
    #[command(subcommand)]
    Import(ImportFrom),
}

/// What `floatip import` reads.
#[derive(Debug, Subcommand)]
pub enum ImportFrom {
    /// Write the floatip configuration that behaves as a keepalived one.
    ///
    /// Reads the file as keepalived does (includes, `@` lines, `$` definitions, `~SEQ`). Everything without an exact
    /// equivalent is a `NEEDS A PERSON` comment in the output and a line on stderr with keepalived's
    /// file:line. Exit status: 0 complete (the output passes `floatip check`), 3 needs a person
    /// (written, or nothing to write), 2 an error keepalived reports too (nothing written), 1 other
    /// errors (no such file).
    Keepalived {
        /// The keepalived configuration.
        #[arg(default_value = import::DEFAULT_KEEPALIVED_CONF, value_name = "FILE")]
        file: PathBuf,
        /// Write here instead of stdout (refused if it exists, unless --force).
        #[arg(long, short, value_name = "PATH")]
        output: Option<PathBuf>,
        /// keepalived's config-id for `@ID` lines (keepalived -i); default: the host name up to its first dot.
        #[arg(long, value_name = "ID")]
        config_id: Option<String>,
        /// Replace an existing --output file.
        #[arg(long)]
        force: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("floatip: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let flag = cli.socket.as_deref();
    match cli.command {
        Command::Status { name, json, daemon } => {
            commands::cmd_status(&control_socket(flag, &daemon)?, name.as_deref(), json)
        }
        Command::Takeover { name, daemon } => {
            commands::cmd_takeover(&control_socket(flag, &daemon)?, &name)
        }
        Command::Release {
            name,
            force,
            daemon,
        } => commands::cmd_release(&control_socket(flag, &daemon)?, &name, force),
        Command::Auto { name, daemon } => {
            commands::cmd_auto(&control_socket(flag, &daemon)?, &name)
        }
        Command::Reload { daemon } => commands::cmd_reload(&control_socket(flag, &daemon)?),
        Command::Events { name, json, daemon } => {
            commands::cmd_events(&control_socket(flag, &daemon)?, name.as_deref(), json)
        }
        Command::Up {
            address,
            dev,
            count,
            daemon,
        } => {
            let (addr, len) = manual::parse_cidr(&address)?;
            let socket = control_socket(flag, &daemon)?;
            block_on(manual::up(addr, len, &dev, count, &socket))
        }
        Command::Down {
            address,
            dev,
            daemon,
        } => {
            let (addr, len) = manual::parse_cidr(&address)?;
            let socket = control_socket(flag, &daemon)?;
            block_on(manual::down(addr, len, &dev, &socket))
        }
        Command::Check { config } => check::check(&config),
        Command::Run { config, log_format } => {
            let log_format = log_format.or(cli.log_format).unwrap_or_default();
            let mut cfg = match config::load(&config) {
                Ok(cfg) => cfg,
                Err(err) => {
                    eprintln!("{err}");
                    eprintln!("floatip: refusing to start; nothing was changed");
                    return Ok(ExitCode::from(2));
                }
            };
            // Before any thread (the runtime's) and before the daemon's own logging: see crate::guard.
            let level = cfg.daemon.log_level.clone();
            let guard = crate::guard::Guard::start(|| {
                crate::service::init_logging(log_format, level.as_deref());
            })?;
            crate::service::init_logging(log_format, cfg.daemon.log_level.as_deref());
            if let Some(socket) = cli.socket {
                cfg.daemon.socket = socket;
            }
            let shutdown = crate::daemon::shutdown_signal();
            block_on(crate::daemon::run(cfg, shutdown, guard))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { config } => {
            let cfg = match config::load(&config) {
                Ok(cfg) => cfg,
                Err(err) => {
                    eprintln!("{err}");
                    return Ok(ExitCode::from(2));
                }
            };
            let socket = control_socket(
                cli.socket.as_deref(),
                &DaemonConfig {
                    config: Some(config),
                },
            )?;
            block_on(doctor::doctor(&cfg, &socket))
        }
        Command::Demo => demo::run(),
        Command::Init {
            vip,
            peer,
            name,
            primary: _,
            secondary,
            output,
            force,
            listen,
            vrid,
        } => block_on(init::run(init::InitArgs {
            vip,
            peer,
            name,
            secondary,
            output,
            force,
            listen,
            vrid,
        })),
        Command::Import(ImportFrom::Keepalived {
            file,
            output,
            config_id,
            force,
        }) => import::run(&file, output.as_ref(), config_id.as_deref(), force),
    }
}

/// Where every command finds the daemon's control socket: `--socket` (or `FLOATIP_SOCKET`); else the
/// `[daemon] socket` of the config file (`--config`, or the default file when it exists); else the
/// default socket. Only that key is read, so a file with an unrelated mistake (being edited, say)
/// still finds its daemon.
pub fn control_socket(flag: Option<&Path>, daemon: &DaemonConfig) -> Result<PathBuf> {
    if let Some(socket) = flag {
        return Ok(socket.to_path_buf());
    }
    let path = daemon
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && daemon.config.is_none() => {
            return Ok(PathBuf::from(config::DEFAULT_SOCKET));
        }
        Err(e) => anyhow::bail!(
            "cannot read {} to find the daemon's control socket: {e}; pass --socket PATH",
            path.display()
        ),
    };
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        anyhow::anyhow!(
            "cannot find the daemon's control socket in {}: it is not valid TOML ({}); \
             `floatip check --config {}` explains, or pass --socket PATH",
            path.display(),
            e.message(),
            path.display()
        )
    })?;
    match table.get("daemon").and_then(|d| d.get("socket")) {
        None => Ok(PathBuf::from(config::DEFAULT_SOCKET)),
        Some(toml::Value::String(s)) if s.starts_with('/') => Ok(PathBuf::from(s)),
        Some(other) => anyhow::bail!(
            "{}: [daemon] socket = {other} is not an absolute path; fix it (`floatip check --config {}`) \
             or pass --socket PATH",
            path.display(),
            path.display()
        ),
    }
}

/// `--listen 3s`: a duration from 100 ms to 60 s.
fn parse_listen(s: &str) -> Result<std::time::Duration, String> {
    let d = config::parse_duration(s)?;
    if d < std::time::Duration::from_millis(100) || d > std::time::Duration::from_secs(60) {
        return Err("listen from 100ms to 60s, e.g. 3s".into());
    }
    Ok(d)
}

/// The commands and the daemon's tasks run on one runtime thread; the daemon's protocol loop has a
/// thread of its own (see `crate::wakeup`) and is still the only place that acts.
fn block_on<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(fut)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::{Cli, Command};
    use crate::service::LogFormat;

    #[test]
    fn log_format_belongs_to_run_only() {
        let before = Cli::try_parse_from(["floatip", "--log-format", "json", "run"]).unwrap();
        assert_eq!(before.log_format, Some(LogFormat::Json));
        let after = Cli::try_parse_from(["floatip", "run", "--log-format", "json"]).unwrap();
        assert!(matches!(
            after.command,
            Command::Run {
                log_format: Some(LogFormat::Json),
                ..
            }
        ));
        // Not an option of the other commands (it did nothing there).
        assert!(Cli::try_parse_from(["floatip", "status", "--log-format", "json"]).is_err());
    }
}
