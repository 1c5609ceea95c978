//! The virtual MAC of an instance (`vmac = true`): the macvlan its VIPs live on ([`VmacHold`]), made
//! or taken over when the instance attaches ([`Daemon::ensure_vmac`]), up only while the instance
//! holds its VIPs ([`set_vmac_up`]), deleted on exit ([`Daemon::remove_vmacs`]); the kernel
//! parameters it changes on the parent, remembered in the state directory before they are changed so
//! that a restart after `kill -9` still puts the originals back ([`SysctlLedger`]); and the announcer
//! that sends gratuitous ARP / NA from the virtual MAC while probing from the parent ([`VmacAnnouncer`]).

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use tracing::{info, warn};

use super::Daemon;
use crate::config::InstanceConfig;
use crate::control::format_mac;
use crate::net::kernel::{Announce, Kernel};
use crate::net::netlink::LinkInfo;
use crate::net::sysctl;

/// The ledger of changed kernel parameters, inside the state directory.
pub const LEDGER_FILE: &str = "vmac-sysctl";

/// An instance's virtual-MAC interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmacHold {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    /// Whether floatip set it up (it is, while the instance holds its VIPs).
    pub up: bool,
}

/// The original values of the kernel parameters floatip changed, by key, kept in a file before the
/// first change so a daemon killed with `kill -9` leaves them for the next start to put back.
#[derive(Debug, Default)]
pub struct SysctlLedger {
    file: Option<PathBuf>,
    originals: BTreeMap<String, String>,
}

impl SysctlLedger {
    /// The ledger of `state_dir`, with what a previous run left in it (its originals win over the
    /// current values, which may be that run's changes).
    pub fn load(state_dir: &Path) -> SysctlLedger {
        let file = state_dir.join(LEDGER_FILE);
        let mut originals = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(&file) {
            originals = parse(&text);
            if !originals.is_empty() {
                info!(
                    "{} kernel parameter(s) changed by an earlier run are put back on exit ({})",
                    originals.len(),
                    file.display()
                );
            }
        }
        SysctlLedger {
            file: Some(file),
            originals,
        }
    }

    /// Sets `key` to `value`, first recording its original value (once).
    pub fn set(&mut self, kernel: &dyn Kernel, key: &str, value: &str) -> io::Result<()> {
        let current = kernel.read_sysctl(key)?;
        if current == value {
            return Ok(());
        }
        if !self.originals.contains_key(key) {
            self.originals.insert(key.to_string(), current);
            self.save()?;
        }
        kernel.write_sysctl(key, value)
    }

    /// Puts every original back and forgets them (the file goes once all are back).
    pub fn restore(&mut self, kernel: &dyn Kernel) {
        let mut failed = BTreeMap::new();
        for (key, value) in std::mem::take(&mut self.originals) {
            match kernel.write_sysctl(&key, &value) {
                Ok(()) => info!("put {key} back to {value}"),
                // The interface is gone: nothing left to put back.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!("cannot put {key} back to {value}: {e}");
                    failed.insert(key, value);
                }
            }
        }
        self.originals = failed;
        if let Err(e) = self.save() {
            warn!("cannot update the kernel parameter ledger: {e}");
        }
    }

    fn save(&self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if self.originals.is_empty() {
            return match std::fs::remove_file(file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let text: String = self
            .originals
            .iter()
            .map(|(k, v)| format!("{k} {v}\n"))
            .collect();
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, file)
    }
}

/// `KEY VALUE` lines (values may hold spaces; a bad line is skipped).
fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(k, _)| !k.is_empty() && !k.contains(".."))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Gratuitous ARP / unsolicited NA from the virtual MAC (so switches and clients learn it), probes
/// from the parent (they go out before a claim, while the virtual-MAC interface is still down).
pub(super) struct VmacAnnouncer {
    pub(super) vmac: Arc<dyn Announce>,
    pub(super) parent: Arc<dyn Announce>,
}

impl Announce for VmacAnnouncer {
    fn announce(&self, addr: IpAddr) -> io::Result<()> {
        self.vmac.announce(addr)
    }

    fn probe(&self, addr: IpAddr) -> io::Result<()> {
        self.parent.probe(addr)
    }
}

/// Brings the virtual-MAC interface up (before a claim adds the VIPs) or down (after they are gone).
/// IPv6: the parent's link-local address (the advert source) goes onto it first, as keepalived does.
pub(super) fn set_vmac_up(
    kernel: &dyn Kernel,
    name: &str,
    vmac: &mut VmacHold,
    primary: IpAddr,
    up: bool,
) {
    if vmac.up == up {
        return;
    }
    if up && primary.is_ipv6() {
        if let Err(err) = kernel.add_address(vmac.index, primary, 64, None) {
            warn!(instance = %name, "cannot put {primary} on {}: {err:#}", vmac.name);
        }
    }
    match kernel.set_link_up(vmac.index, up) {
        Ok(()) => vmac.up = up,
        Err(err) => warn!(instance = %name, "{err:#} ({})", vmac.name),
    }
}

impl Daemon {
    /// The virtual-MAC interface of `inst` on `parent`: made (down) when missing, taken over (set
    /// down, its kernel parameters set again) when a macvlan with our name, parent and MAC is left
    /// from a killed run. `Ok(Err(..))`: an interface with that name is someone else's, never touched.
    pub(super) fn ensure_vmac(
        &mut self,
        inst: &InstanceConfig,
        parent: &LinkInfo,
        primary: IpAddr,
    ) -> Result<Result<VmacHold, String>> {
        let (Some(name), mac) = (inst.vmac_name(), inst.vmac_address()) else {
            return Ok(Err("vmac is off".into()));
        };
        let shared = self.vmac_in_use(&name);
        let existing = match self.kernel.vmac_lookup(&name)? {
            // A reload's new instance on the same virtual router: the retiring one still uses it.
            Some(l) if shared && l.is_ours(parent.index, mac) => Some(l.link),
            Some(l) if l.is_ours(parent.index, mac) => {
                info!(instance = %inst.name, "taking over {name} ({}, left by an earlier run)", format_mac(&mac));
                if l.admin_up {
                    self.kernel.set_link_up(l.link.index, false)?;
                }
                Some(l.link)
            }
            Some(l) => {
                return Ok(Err(format!(
                    "interface {name} exists and is not a virtual-MAC interface of ours (kind {}, parent index {}, MAC {}; ours is a macvlan on {} with {}); remove it or set vmac_interface to another name",
                    l.kind.as_deref().unwrap_or("none"),
                    l.parent.map_or("none".into(), |p| p.to_string()),
                    format_mac(&l.link.mac),
                    parent.name,
                    format_mac(&mac)
                )))
            }
            None => None,
        };
        let link = match existing {
            Some(l) => l,
            None => {
                self.kernel.create_macvlan(parent.index, &name, mac)?;
                let l = self.kernel.link_by_name(&name)?;
                info!(instance = %inst.name, "created {name} ({}) on {}", format_mac(&mac), parent.name);
                l
            }
        };
        self.set_vmac_sysctls(inst, &parent.name, &name);
        if primary.is_ipv6() {
            // The advert source: the senders bind to it on the virtual-MAC interface.
            self.kernel.add_address(link.index, primary, 64, None)?;
        }
        Ok(Ok(VmacHold {
            name,
            index: link.index,
            mac,
            up: false,
        }))
    }

    /// The kernel parameters the parent and the virtual-MAC interface need (see [`sysctl`]); a failure
    /// is a warning (read-only `/proc/sys`, e.g. systemd's `ProtectKernelTunables`), `doctor` checks them.
    fn set_vmac_sysctls(&mut self, inst: &InstanceConfig, parent: &str, vmac: &str) {
        let mut failures = Vec::new();
        if !inst.is_v6() {
            for (param, value) in sysctl::PARENT_V4 {
                let key = sysctl::ipv4_conf(parent, param);
                if let Err(e) = self.vmac_ledger.set(&*self.kernel, &key, value) {
                    failures.push(e.to_string());
                }
            }
        }
        let own: Vec<(String, &str)> = if inst.is_v6() {
            sysctl::VMAC_V6
                .iter()
                .map(|(p, v)| (sysctl::ipv6_conf(vmac, p), *v))
                .collect()
        } else {
            sysctl::VMAC_V4
                .iter()
                .map(|(p, v)| (sysctl::ipv4_conf(vmac, p), *v))
                .chain(
                    sysctl::VMAC_V4_NO_V6
                        .iter()
                        .map(|(p, v)| (sysctl::ipv6_conf(vmac, p), *v)),
                )
                .collect()
        };
        for (key, value) in own {
            let done = self.kernel.read_sysctl(&key).and_then(|cur| {
                if cur == value {
                    Ok(())
                } else {
                    self.kernel.write_sysctl(&key, value)
                }
            });
            if let Err(e) = done {
                failures.push(e.to_string());
            }
        }
        for f in failures {
            warn!(instance = %inst.name, "virtual MAC: {f}; clients may learn the parent's MAC for the VIP (`floatip doctor` checks the settings)");
        }
    }

    /// Whether a running (or waiting) instance holds the virtual-MAC interface `name`.
    fn vmac_in_use(&self, name: &str) -> bool {
        self.instances
            .iter()
            .chain(&self.pending_starts)
            .any(|r| r.vmac.as_ref().is_some_and(|v| v.name == name))
    }

    /// Instances a reload removed are gone: their virtual-MAC interfaces go too, unless a new
    /// instance took them over.
    pub(super) fn drop_unused_vmacs(&mut self, gone: Vec<VmacHold>) {
        for v in gone {
            if self.vmac_in_use(&v.name) {
                continue;
            }
            match self.kernel.delete_link(v.index) {
                Ok(()) => info!("removed {} (its instance was removed by a reload)", v.name),
                Err(err) => warn!("cannot remove {}: {err:#}", v.name),
            }
        }
    }

    /// On exit: every virtual-MAC interface goes (with any VIP still on it), and the parents' kernel
    /// parameters go back to what they were.
    pub(super) fn remove_vmacs(&mut self) {
        for rt in self.instances.iter_mut().chain(&mut self.pending_starts) {
            if let Some(v) = rt.vmac.take() {
                match self.kernel.delete_link(v.index) {
                    Ok(()) => info!(instance = %rt.cfg.name, "removed {}", v.name),
                    Err(err) => warn!(instance = %rt.cfg.name, "cannot remove {}: {err:#}", v.name),
                }
            }
        }
        self.vmac_ledger.restore(&*self.kernel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_lines_parse_back() {
        let m = parse("net/ipv4/conf/eth0/arp_ignore 0\nbad\nnet/ipv4/conf/eth0/arp_filter 2\n");
        assert_eq!(m.len(), 2);
        assert_eq!(m["net/ipv4/conf/eth0/arp_filter"], "2");
    }
}
