//! `floatip check`: validate a configuration file and explain every problem; touches nothing.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::config;

pub fn check(path: &Path) -> Result<ExitCode> {
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
