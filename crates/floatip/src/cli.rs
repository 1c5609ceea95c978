//! The command line: raw arguments (clap) to one of the commands, each returning an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::config;

#[derive(Debug, Parser)]
#[command(
    name = "floatip",
    version,
    about = "Keep a service IP on exactly one healthy host of a LAN (VRRP, keepalived-compatible)"
)]
pub struct Cli {
    /// Control socket of the daemon to talk to (overrides [daemon] socket).
    #[arg(long, global = true, env = "FLOATIP_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Log format for `run`: "text" (default) or "json".
    #[arg(long, global = true, default_value = "text", value_name = "FORMAT")]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground.
    Run {
        #[arg(long, short, default_value = config::DEFAULT_PATH, value_name = "PATH")]
        config: PathBuf,
    },
    /// Validate a configuration file and explain every error; touches nothing.
    Check {
        #[arg(long, short, default_value = config::DEFAULT_PATH, value_name = "PATH")]
        config: PathBuf,
    },
    /// A live failover on this machine, in network namespaces (needs root).
    Demo,
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
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config } => {
            crate::daemon::init_logging(cli.log_format);
            let mut cfg = match config::load(&config) {
                Ok(cfg) => cfg,
                Err(err) => {
                    eprintln!("{err}");
                    eprintln!("floatip: refusing to start; nothing was changed");
                    return Ok(ExitCode::from(2));
                }
            };
            if let Some(socket) = cli.socket {
                cfg.daemon.socket = socket;
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(crate::daemon::run(cfg, crate::daemon::shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => crate::demo::run(),
    }
}

fn check(path: &std::path::Path) -> Result<ExitCode> {
    match config::load(path) {
        Ok(cfg) => {
            println!("{}: OK", path.display());
            for inst in &cfg.instances {
                let addrs: Vec<String> = inst.addresses.iter().map(|a| a.to_string()).collect();
                println!(
                    "  instance {:<12} {} vrid {:<3} priority {:<3} VRRPv{} every {:?}: {}",
                    inst.name,
                    inst.interface,
                    inst.vrid,
                    inst.priority,
                    if inst.version == vrrp::Version::V2 {
                        2
                    } else {
                        3
                    },
                    inst.advert_interval,
                    addrs.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("{err}");
            Ok(ExitCode::from(2))
        }
    }
}
