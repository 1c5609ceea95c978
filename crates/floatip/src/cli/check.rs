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
                if let (config::Election::Etcd, Some(etcd)) = (inst.election, &cfg.etcd) {
                    println!(
                        "  instance {:<12} {} priority {:<3} owner by etcd lease ({:?}, {}): {}",
                        inst.name,
                        inst.interface,
                        inst.priority,
                        etcd.lease_ttl,
                        etcd.endpoints.join(", "),
                        addrs.join(", ")
                    );
                    continue;
                }
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
            let insecure = cfg.instances.iter().flat_map(|inst| {
                inst.checks
                    .iter()
                    .filter_map(|c| crate::health::insecure_warning(&inst.name, c))
            });
            for warning in
                missing_interfaces(&cfg, |name| Path::new("/sys/class/net").join(name).exists())
                    .into_iter()
                    .chain(insecure)
            {
                println!("  warning: {warning}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("{err}");
            Ok(ExitCode::from(2))
        }
    }
}

/// A warning for each instance whose interface `exists` does not know: not an error, since the daemon
/// waits for it in FAULT (a VLAN or bridge created late at boot), but a typo looks the same.
fn missing_interfaces(cfg: &config::Config, exists: impl Fn(&str) -> bool) -> Vec<String> {
    cfg.instances
        .iter()
        .filter(|inst| !exists(&inst.interface))
        .map(|inst| {
            format!(
                "interface {} does not exist on this host (yet): instance {} will wait for it in FAULT \
                 (a typo? `ip link` shows the names)",
                inst.interface, inst.name
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interface_is_a_warning_naming_it_and_its_instance() {
        let dir = std::env::temp_dir().join(format!("floatip-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("floatip.toml");
        std::fs::write(
            &path,
            "[[instance]]\nname = \"files\"\ninterface = \"eth0\"\nvrid = 51\npriority = 150\n\
             addresses = [\"192.0.2.97/24\"]\n\n[[instance]]\nname = \"late\"\ninterface = \"eth1\"\n\
             vrid = 52\npriority = 150\naddresses = [\"192.0.2.98/24\"]\n",
        )
        .unwrap();
        let cfg = config::load(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let warnings = missing_interfaces(&cfg, |name| name == "eth0");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0]
                .starts_with("interface eth1 does not exist on this host (yet): instance late"),
            "{}",
            warnings[0]
        );
        assert!(missing_interfaces(&cfg, |_| true).is_empty());
    }

    #[test]
    fn insecure_skip_verify_is_a_warning_naming_the_check() {
        let cfg = config::parse(
            "[[instance]]\nname = \"files\"\ninterface = \"eth0\"\nvrid = 51\naddresses = [\"192.0.2.97/24\"]\n\n[[instance.check]]\nname = \"hv\"\nkind = \"http\"\nurl = \"https://192.0.2.11/\"\ninsecure_skip_verify = true\n\n[[instance.check]]\nname = \"nas\"\nkind = \"http\"\nurl = \"https://192.0.2.10/\"\n",
            Path::new("/etc/floatip/floatip.toml"),
        )
        .unwrap();
        let checks = &cfg.instances[0].checks;
        let warning = crate::health::insecure_warning("files", &checks[0]).unwrap();
        assert!(
            warning.contains("check hv") && warning.contains("https://192.0.2.11/"),
            "{warning}"
        );
        assert_eq!(crate::health::insecure_warning("files", &checks[1]), None);
    }
}
