//! An instance's hold on its interface: resolving the link and the address adverts go out from, and
//! opening (or sharing, by interface index) the sockets on it ([`Daemon::attach`], shared by start-up
//! and by everything after); an instance whose interface is not there yet, or has no usable address
//! yet, waits in FAULT with that reason and joins the election once both appear
//! ([`Daemon::try_attach`]); an interface deleted (and maybe created again under a new index) takes
//! its instances to FAULT and closes what was open on it ([`Daemon::detach_link`]).

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::{info, warn};
use vrrp::packet::{GROUP_V4, GROUP_V6};
use vrrp::Event;

use super::runtime::{Runtime, SockKey};
use super::vmac::{VmacAnnouncer, VmacHold};
use super::Daemon;
use crate::config::InstanceConfig;
use crate::net::kernel::{AdvertSender, Announce};
use crate::net::netlink::LinkInfo;

/// The index an instance holds while its interface does not exist (the kernel never uses 0).
pub(super) const NO_LINK: u32 = 0;

/// What an instance holds on its interface once the link and its address are there.
pub(super) struct Attachment {
    pub(super) link: LinkInfo,
    pub(super) primary: IpAddr,
    pub(super) sock_key: SockKey,
    pub(super) announcer: Arc<dyn Announce>,
    /// The host's own addresses on the interface (not our VIPs), for the receive policy.
    pub(super) own_addresses: Vec<IpAddr>,
    pub(super) destinations: Vec<(IpAddr, Arc<dyn AdvertSender>)>,
    /// The virtual-MAC interface (`vmac = true`): the VIPs, adverts and announcements go there.
    pub(super) vmac: Option<VmacHold>,
}

/// Why an instance cannot run on its interface yet (its FAULT reason), and the link when it is the
/// address that is missing.
pub(super) struct Unattached {
    pub(super) reason: String,
    pub(super) link: Option<LinkInfo>,
}

impl Unattached {
    /// The link an instance holds meanwhile: the real one, or a placeholder no event matches.
    pub(super) fn link_or_placeholder(&self, name: &str) -> LinkInfo {
        self.link.clone().unwrap_or_else(|| no_link(name))
    }
}

pub(super) fn no_link(name: &str) -> LinkInfo {
    LinkInfo {
        index: NO_LINK,
        name: name.to_string(),
        mac: [0; 6],
        up: false,
    }
}

/// The announcer of an instance whose interface is not there: every call fails and says so.
pub(super) struct NoInterface(pub(super) String);

impl Announce for NoInterface {
    fn announce(&self, addr: IpAddr) -> io::Result<()> {
        Err(self.missing(addr))
    }

    fn probe(&self, addr: IpAddr) -> io::Result<()> {
        Err(self.missing(addr))
    }
}

impl NoInterface {
    fn missing(&self, addr: IpAddr) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("interface {} does not exist, {addr} not sent", self.0),
        )
    }
}

impl Daemon {
    /// Resolve the instance's link and advert source, then open (or share) its sockets.
    /// `Ok(Err(..))`: a piece is not there yet, which is not an error (the instance waits in FAULT);
    /// `Err`: the host refused something (a socket), which is.
    pub(super) fn attach(
        &mut self,
        inst: &InstanceConfig,
        dad_patience: Duration,
    ) -> Result<Result<Attachment, Unattached>> {
        let Some(link) = self
            .kernel
            .find_link(&inst.interface)
            .with_context(|| format!("instance {}", inst.name))?
        else {
            return Ok(Err(Unattached {
                reason: format!("interface {} does not exist (yet)", inst.interface),
                link: None,
            }));
        };
        let v6 = inst.is_v6();
        let vips: Vec<IpAddr> = inst.addresses.iter().map(|v| v.addr).collect();
        let primary = match self.settled_primary(inst, link.index, &vips, dad_patience)? {
            Ok(primary) => primary,
            Err(reason) => {
                return Ok(Err(Unattached {
                    reason,
                    link: Some(link),
                }))
            }
        };
        let vmac = if inst.vmac {
            match self
                .ensure_vmac(inst, &link, primary)
                .with_context(|| format!("instance {}: virtual MAC", inst.name))?
            {
                Ok(v) => Some(v),
                Err(reason) => {
                    return Ok(Err(Unattached {
                        reason,
                        link: Some(link),
                    }))
                }
            }
        } else {
            None
        };
        let key = (link.index, v6);
        self.open_receiver(inst, &inst.interface, key)?;
        if let Some(v) = &vmac {
            // While it is up, the peers' adverts from the same virtual MAC reach it, not the parent.
            self.open_receiver(inst, &v.name, (v.index, v6))?;
        }
        let mut announcer = self.announcer(inst, link.index, link.mac)?;
        if let Some(v) = &vmac {
            announcer = Arc::new(VmacAnnouncer {
                vmac: self.announcer(inst, v.index, v.mac)?,
                parent: announcer,
            });
        }
        if !self.watched.contains(&key) {
            self.kernel
                .watch_conflicts(link.index, link.mac, v6, self.chans.sightings.clone())
                .with_context(|| format!("instance {}", inst.name))?;
            self.watched.insert(key);
        }
        let own_addresses = self
            .kernel
            .addresses(link.index)?
            .into_iter()
            .map(|(a, _)| a)
            .filter(|a| !vips.contains(a))
            .collect();
        let targets = if inst.unicast_peers.is_empty() {
            vec![if v6 {
                IpAddr::V6(GROUP_V6)
            } else {
                IpAddr::V4(GROUP_V4)
            }]
        } else {
            inst.unicast_peers.clone()
        };
        let (send_if, send_index) = match &vmac {
            Some(v) => (v.name.as_str(), v.index),
            None => (inst.interface.as_str(), link.index),
        };
        let mut destinations = Vec::new();
        for dst in targets {
            let skey = (send_index, primary, dst);
            let sender = match self.senders.get(&skey) {
                Some(s) => s.clone(),
                None => {
                    let s = self
                        .kernel
                        .open_sender(send_if, send_index, primary, dst)
                        .with_context(|| format!("instance {}: advert sender", inst.name))?;
                    self.senders.insert(skey, s.clone());
                    s
                }
            };
            destinations.push((dst, sender));
        }
        Ok(Ok(Attachment {
            link,
            primary,
            sock_key: key,
            announcer,
            own_addresses,
            destinations,
            vmac,
        }))
    }

    /// The shared VRRP receive socket `key` on `ifname`, opened and watched once.
    fn open_receiver(&mut self, inst: &InstanceConfig, ifname: &str, key: SockKey) -> Result<()> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.sockets.entry(key) {
            let sock = self
                .kernel
                .open_receiver(ifname, key.0, key.1)
                .with_context(|| format!("instance {}: VRRP socket on {ifname}", inst.name))?;
            if let Some(fd) = sock.fd() {
                self.wakeup
                    .watch(fd, self.socket_keys.len() as u64)
                    .with_context(|| format!("instance {}: watching the VRRP socket", inst.name))?;
            }
            self.socket_keys.push(key);
            slot.insert(sock);
        }
        Ok(())
    }

    /// The shared announcer of interface `index`, sending from `mac`.
    fn announcer(
        &mut self,
        inst: &InstanceConfig,
        index: u32,
        mac: [u8; 6],
    ) -> Result<Arc<dyn Announce>> {
        if let Some(a) = self.announcers.get(&index) {
            return Ok(a.clone());
        }
        let a = self
            .kernel
            .open_announcer(index, mac)
            .with_context(|| format!("instance {}: announcer", inst.name))?;
        self.announcers.insert(index, a.clone());
        Ok(a)
    }

    /// Instance `i` waits for its interface or its address: try again, and on success join the election.
    pub(super) fn try_attach(&mut self, now: Instant, i: usize) {
        let inst = self.instances[i].cfg.clone();
        let result = self.attach(&inst, Duration::ZERO);
        let rt = &mut self.instances[i];
        match result {
            Ok(Ok(a)) => {
                info!(instance = %rt.cfg.name, "{} (index {}) is usable now, adverts from {}: joining the election", inst.interface, a.link.index, a.primary);
                rt.attach_to(now, a);
                rt.reevaluate(now);
            }
            Ok(Err(u)) => rt.wait_for(now, u),
            Err(err) => rt.wait_for(
                now,
                Unattached {
                    reason: format!("{err:#}"),
                    link: None,
                },
            ),
        }
        self.status_dirty = true;
    }

    /// The interface `index` is gone (deleted, or replaced under a new index): its instances wait in
    /// FAULT (their VIPs went with it), and the sockets, senders, announcer and ARP/ND watch on it close.
    pub(super) fn detach_link(&mut self, now: Instant, index: u32) {
        if index == NO_LINK {
            return;
        }
        for rt in self.instances.iter_mut().filter(|r| r.link.index == index) {
            let reason = format!(
                "interface {} was deleted; waiting for it to come back",
                rt.cfg.interface
            );
            warn!(instance = %rt.cfg.name, "{reason}");
            rt.wait_for(now, Unattached { reason, link: None });
        }
        let gone: Vec<SockKey> = self
            .sockets
            .keys()
            .filter(|k| k.0 == index)
            .copied()
            .collect();
        for key in gone {
            if let Some(fd) = self.sockets.remove(&key).and_then(|s| s.fd()) {
                let _ = self.wakeup.unwatch(fd);
            }
        }
        self.senders.retain(|k, _| k.0 != index);
        self.announcers.remove(&index);
        self.watched.retain(|k| k.0 != index);
        self.kernel.forget_link(index);
        self.status_dirty = true;
    }
}

impl Runtime {
    /// Take up a (new) hold on the interface: its index, advert source, sockets and receive policy.
    pub(super) fn attach_to(&mut self, now: Instant, a: Attachment) {
        if a.primary != self.primary {
            self.core.handle_event(now, Event::Primary(a.primary));
        }
        self.primary = a.primary;
        self.sock_key = a.sock_key;
        self.announcer = a.announcer;
        self.policy.own_addresses = a.own_addresses;
        self.destinations = a.destinations;
        self.vmac = a.vmac;
        self.link = a.link;
        self.detached = None;
        self.sync_link(now);
    }

    /// Not (or no longer) usable on the interface: FAULT with this reason until [`Runtime::attach_to`].
    pub(super) fn wait_for(&mut self, now: Instant, u: Unattached) {
        if self.detached.as_deref() != Some(u.reason.as_str()) {
            info!(instance = %self.cfg.name, "FAULT until {} is usable: {}", self.cfg.interface, u.reason);
        }
        let gone = u.link.is_none();
        self.link = u.link_or_placeholder(&self.cfg.interface);
        self.detached = Some(u.reason);
        if gone {
            self.destinations.clear();
            self.announcer = Arc::new(NoInterface(self.cfg.interface.clone()));
            self.policy.own_addresses.clear();
            self.probe = None;
            // A macvlan goes with its parent.
            self.vmac = None;
        }
        self.reevaluate(now);
        self.sync_link(now);
    }

    /// Tell the core whether the link it is on has carrier, when that changed.
    pub(super) fn sync_link(&mut self, now: Instant) {
        if self.link.up && self.core.link_is_down() {
            self.core.handle_event(now, Event::LinkUp);
        } else if !self.link.up && !self.core.link_is_down() {
            self.core.handle_event(now, Event::LinkDown);
        }
    }
}
