//! `floatip doctor`: a checklist of everything that commonly stops a floating IP from working, each
//! failure with the line that fixes it.
//!
//! It only looks: it opens a VRRP socket to listen (never sends adverts), sends ARP probes / DAD
//! solicitations (RFC 5227: they never change anyone's ARP cache), reads `/proc/sys`, and runs
//! `nft -j list ruleset` when nft is installed. Run it as root (raw sockets, nftables).
//!
//! Order of the report: the daemon, then per instance the interface, its address, what is heard on
//! the wire, who answers ARP for each VIP and the sysctls that bite; then the firewall.

mod link;
mod nft;
mod sysctl;
mod vmac;
pub(crate) mod wire;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::control::{self, InstanceStatus, Request, Response};
use crate::net::netlink::{LinkInfo, Netlink};
use link::instance_checks;
use nft::firewall_section;
use sysctl::sysctl_section;
use wire::{listen, wire_items, Heard};

/// How one line of the checklist came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Ok,
    /// Worth knowing, may bite; does not fail the run.
    Warn,
    Fail,
    /// A plain fact (who was heard, what was skipped).
    Info,
}

impl Mark {
    fn symbol(self) -> &'static str {
        match self {
            Mark::Ok => "✓",
            Mark::Warn => "!",
            Mark::Fail => "✗",
            Mark::Info => "·",
        }
    }
}

/// One line of the checklist, with its fix (one or more lines) when it is not OK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub mark: Mark,
    pub text: String,
    pub fix: Vec<String>,
}

fn item(mark: Mark, text: impl Into<String>) -> Item {
    Item {
        mark,
        text: text.into(),
        fix: Vec::new(),
    }
}

fn fail(text: impl Into<String>, fix: &[&str]) -> Item {
    Item {
        mark: Mark::Fail,
        text: text.into(),
        fix: fix.iter().map(|s| s.to_string()).collect(),
    }
}

fn warn(text: impl Into<String>, fix: &[&str]) -> Item {
    Item {
        mark: Mark::Warn,
        text: text.into(),
        fix: fix.iter().map(|s| s.to_string()).collect(),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Section {
    pub title: String,
    pub items: Vec<Item>,
}

/// The whole checklist.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub sections: Vec<Section>,
}

impl Report {
    pub fn failures(&self) -> usize {
        self.items().filter(|i| i.mark == Mark::Fail).count()
    }

    pub fn warnings(&self) -> usize {
        self.items().filter(|i| i.mark == Mark::Warn).count()
    }

    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.sections.iter().flat_map(|s| s.items.iter())
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.sections {
            let _ = writeln!(out, "{}", s.title);
            for i in &s.items {
                let _ = writeln!(out, "  {} {}", i.mark.symbol(), i.text);
                for f in &i.fix {
                    let _ = writeln!(out, "      fix: {f}");
                }
            }
            out.push('\n');
        }
        let (f, w) = (self.failures(), self.warnings());
        if f == 0 && w == 0 {
            out.push_str("No problems found.\n");
        } else {
            let _ = writeln!(
                out,
                "{f} problem{} and {w} warning{} (✗ = broken, ! = may bite).",
                if f == 1 { "" } else { "s" },
                if w == 1 { "" } else { "s" }
            );
        }
        out
    }
}

/// Runs every check, prints the checklist, and exits 0 when nothing failed (warnings allowed), 1
/// otherwise.
pub async fn doctor(config: &Config, socket: &Path) -> anyhow::Result<ExitCode> {
    let report = run(config, socket).await;
    print!("{}", report.render());
    Ok(if report.failures() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Builds the report (what [`doctor`] prints).
pub async fn run(config: &Config, socket: &Path) -> Report {
    let mut report = Report::default();

    let socket_owned = socket.to_path_buf();
    let daemon = tokio::task::spawn_blocking(move || {
        control::call(&socket_owned, Request::Status { instance: None })
    })
    .await;
    let mut daemon_section = Section {
        title: "Daemon".into(),
        items: vec![],
    };
    let statuses: Option<Vec<InstanceStatus>> = match daemon {
        Ok(Ok(Response::Status { instances, .. })) => {
            let line = instances
                .iter()
                .map(|i| format!("{}: {}", i.name, i.state))
                .collect::<Vec<_>>()
                .join("; ");
            daemon_section.items.push(item(
                Mark::Ok,
                format!("running, answering on {} ({line})", socket.display()),
            ));
            Some(instances)
        }
        Ok(Ok(other)) => {
            daemon_section.items.push(warn(
                format!(
                    "the daemon on {} answered oddly: {other:?}",
                    socket.display()
                ),
                &["make sure the floatip CLI and daemon are the same version"],
            ));
            None
        }
        // A host with a config and no daemon has nobody keeping its VIPs: a problem, not a remark.
        Ok(Err(e)) => {
            daemon_section.items.push(fail(
                format!("no daemon answers on {}: {e:#}", socket.display()),
                &[
                    "start it: `systemctl start floatip` (why it stopped: `journalctl -u floatip`)",
                    "or, if it runs with another socket, point doctor at it: --socket PATH",
                ],
            ));
            None
        }
        Err(e) => {
            daemon_section
                .items
                .push(warn(format!("cannot ask the daemon: {e}"), &[]));
            None
        }
    };
    report.sections.push(daemon_section);

    let netlink = match Netlink::new() {
        Ok(n) => Some(n),
        Err(e) => {
            report.sections.push(Section {
                title: "Netlink".into(),
                items: vec![fail(
                    format!("cannot open netlink: {e:#}"),
                    &["run doctor as root"],
                )],
            });
            None
        }
    };

    // Resolve links first, so listening can run while the other checks do.
    let mut links: HashMap<String, Option<LinkInfo>> = HashMap::new();
    if let Some(nl) = &netlink {
        for inst in &config.instances {
            if !links.contains_key(&inst.interface) {
                links.insert(
                    inst.interface.clone(),
                    nl.link_by_name(&inst.interface).await.ok(),
                );
            }
        }
    }
    let listen_for = listen_duration(config);
    let mut listeners = Vec::new();
    let mut groups: BTreeSet<(String, bool)> = BTreeSet::new();
    for inst in &config.instances {
        groups.insert((inst.interface.clone(), inst.is_v6()));
    }
    for (ifname, v6) in groups {
        let Some(Some(link)) = links.get(&ifname) else {
            continue;
        };
        if !link.up {
            continue;
        }
        let (index, name) = (link.index, ifname.clone());
        listeners.push((
            (ifname, v6),
            tokio::spawn(async move { listen(&name, index, v6, listen_for).await }),
        ));
    }

    let mut per_instance = Vec::new();
    for inst in &config.instances {
        let status = statuses
            .as_ref()
            .and_then(|s| s.iter().find(|i| i.name == inst.name));
        let link = links.get(&inst.interface).cloned().flatten();
        per_instance.push(
            instance_checks(
                inst,
                netlink.as_ref(),
                link.as_ref(),
                status,
                statuses.is_some(),
            )
            .await,
        );
    }

    let mut heard: HashMap<(String, bool), Result<Vec<Heard>, String>> = HashMap::new();
    for (key, task) in listeners {
        let result = match task.await {
            Ok(r) => r,
            Err(e) => Err(format!("listener failed: {e}")),
        };
        heard.insert(key, result);
    }

    for (inst, mut section) in config.instances.iter().zip(per_instance) {
        let status = statuses
            .as_ref()
            .and_then(|s| s.iter().find(|i| i.name == inst.name));
        let link = links.get(&inst.interface).cloned().flatten();
        match (&link, heard.get(&(inst.interface.clone(), inst.is_v6()))) {
            (Some(_), Some(Ok(list))) => section
                .items
                .extend(wire_items(inst, list, status, listen_for)),
            (Some(_), Some(Err(e))) => section.items.push(fail(
                format!("cannot listen for adverts on {}: {e}", inst.interface),
                &["run doctor as root (raw sockets need CAP_NET_RAW)"],
            )),
            (Some(l), None) if !l.up => section.items.push(item(
                Mark::Info,
                "adverts: not checked, the interface is down",
            )),
            _ => section.items.push(item(
                Mark::Info,
                "adverts: not checked, the interface is missing",
            )),
        }
        report.sections.push(section);
    }

    report.sections.push(sysctl_section(config));
    if let Some(section) = vmac::vmac_section(config) {
        report.sections.push(section);
    }
    report.sections.push(firewall_section(config).await);
    report
}

/// Three advert intervals of the slowest instance, within 1..=15 s.
fn listen_duration(config: &Config) -> Duration {
    let longest = config
        .instances
        .iter()
        .map(|i| i.advert_interval)
        .max()
        .unwrap_or(Duration::from_secs(1));
    (3 * longest + Duration::from_millis(200))
        .clamp(Duration::from_secs(1), Duration::from_secs(15))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_counts_and_renders() {
        let r = Report {
            sections: vec![Section {
                title: "X".into(),
                items: vec![
                    item(Mark::Ok, "fine"),
                    fail("broken", &["do this"]),
                    warn("hmm", &[]),
                ],
            }],
        };
        assert_eq!((r.failures(), r.warnings()), (1, 1));
        let text = r.render();
        assert!(text.contains("  ✗ broken\n      fix: do this\n"), "{text}");
        assert!(text.contains("1 problem and 1 warning"), "{text}");
    }
}
