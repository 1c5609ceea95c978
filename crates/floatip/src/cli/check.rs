//! `floatip check`: validate a configuration file and explain every problem; touches nothing.

use std::net::IpAddr;
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
            let own = own_addresses();
            for warning in
                missing_interfaces(&cfg, |name| Path::new("/sys/class/net").join(name).exists())
                    .into_iter()
                    .chain(http_everywhere(&cfg))
                    .chain(peers_that_float(&cfg))
                    .chain(peers_that_are_ours(&cfg, |a| own.contains(&a)))
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

/// `[daemon] http` on every interface (0.0.0.0, [::]): the page, `/status.json` and `/metrics` have
/// no authentication, so everyone on every network of the host can read them.
fn http_everywhere(cfg: &config::Config) -> Option<String> {
    let addr = cfg.daemon.http?;
    addr.ip().is_unspecified().then(|| {
        format!(
            "[daemon] http = \"{addr}\" serves the status page, /status.json and /metrics without \
             authentication on every interface of this host: bind it to 127.0.0.1:{port} (or one \
             management address) unless the whole LAN may read them",
            port = addr.port()
        )
    })
}

/// A warning for each `unicast_peers` entry that is a VIP of another instance of this file: a peer
/// is another host's own address, and a floating one may be this host's at the time (the instance's
/// own VIPs are refused when the file is read).
fn peers_that_float(cfg: &config::Config) -> Vec<String> {
    let mut out = Vec::new();
    for inst in &cfg.instances {
        for peer in &inst.unicast_peers {
            if let Some(other) = cfg
                .instances
                .iter()
                .find(|o| o.addresses.iter().any(|v| v.addr == *peer))
            {
                out.push(format!(
                    "instance {}: unicast_peers lists {peer}, a VIP of instance {}: list the other \
                     hosts' own addresses, not a floating one",
                    inst.name, other.name
                ));
            }
        }
    }
    out
}

/// A warning for each `unicast_peers` entry that `own` says is an address of this host: each host
/// lists the others, so this one would send its adverts to itself.
fn peers_that_are_ours(cfg: &config::Config, own: impl Fn(IpAddr) -> bool) -> Vec<String> {
    cfg.instances
        .iter()
        .flat_map(|inst| {
            inst.unicast_peers
                .iter()
                // A VIP of the file is [`peers_that_float`]'s (or refused when the file is read).
                .filter(|p| {
                    own(**p)
                        && !cfg
                            .instances
                            .iter()
                            .any(|o| o.addresses.iter().any(|v| v.addr == **p))
                })
                .map(move |peer| {
                    format!(
                        "instance {}: unicast_peers lists {peer}, an address of this host: each host \
                         lists the other hosts' addresses, not its own (a file copied from the peer?)",
                        inst.name
                    )
                })
        })
        .collect()
}

/// The addresses on this host's interfaces now (none when they cannot be read).
fn own_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let sa = a.address?;
            if let Some(v4) = sa.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                sa.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
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

    /// `http` on every interface, a peer that is another instance's VIP, a peer that is this host.
    #[test]
    fn exposed_page_and_misplaced_peers_are_warnings() {
        let cfg = config::parse(
            "[daemon]\nhttp = \"0.0.0.0:9797\"\n\n[[instance]]\nname = \"files\"\ninterface = \"eth0\"\n\
             vrid = 51\naddresses = [\"192.0.2.97/24\"]\nunicast_peers = [\"192.0.2.98\", \"192.0.2.1\", \"192.0.2.2\"]\n\n\
             [[instance]]\nname = \"web\"\ninterface = \"eth0\"\nvrid = 52\naddresses = [\"192.0.2.98/24\"]\n",
            Path::new("/etc/floatip/floatip.toml"),
        )
        .unwrap();
        let http = http_everywhere(&cfg).unwrap();
        assert!(
            http.starts_with("[daemon] http = \"0.0.0.0:9797\" serves the status page")
                && http.contains("127.0.0.1:9797"),
            "{http}"
        );
        let floating = peers_that_float(&cfg);
        assert_eq!(floating.len(), 1, "{floating:?}");
        assert!(
            floating[0].starts_with(
                "instance files: unicast_peers lists 192.0.2.98, a VIP of instance web"
            ),
            "{}",
            floating[0]
        );
        // This host is 192.0.2.1 and holds web's VIP: that one is not reported twice.
        let own = ["192.0.2.1", "192.0.2.98"].map(|a| a.parse::<IpAddr>().unwrap());
        let ours = peers_that_are_ours(&cfg, |a| own.contains(&a));
        assert_eq!(ours.len(), 1, "{ours:?}");
        assert!(
            ours[0].starts_with(
                "instance files: unicast_peers lists 192.0.2.1, an address of this host"
            ),
            "{}",
            ours[0]
        );
        let local = config::parse(
            "[daemon]\nhttp = \"127.0.0.1:9797\"\n\n[[instance]]\nname = \"files\"\ninterface = \"eth0\"\n\
             vrid = 51\naddresses = [\"192.0.2.97/24\"]\nunicast_peers = [\"192.0.2.2\"]\n",
            Path::new("/etc/floatip/floatip.toml"),
        )
        .unwrap();
        assert_eq!(http_everywhere(&local), None);
        assert!(peers_that_float(&local).is_empty());
        assert!(peers_that_are_ours(&local, |a| own.contains(&a)).is_empty());
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
