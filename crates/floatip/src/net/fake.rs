//! A fake kernel edge for the daemon's unit tests: links and addresses held in memory, and a log of
//! every address change, advert, announcement and probe, so the daemon's event handling (elections,
//! releases, reloads) runs without root, sockets or a real clock.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use tokio::sync::mpsc;

use super::kernel::{AdvertSender, Announce, Kernel, Receive};
use super::netlink::{AddrDetails, LinkInfo, VmacLink};
use super::vrrp_socket::Datagram;
use crate::conflict::Sighting;

/// What the daemon did to the fake host, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Add(IpAddr),
    Remove(IpAddr),
    Refresh(IpAddr),
    /// An advert to `dst` with this priority.
    Advert {
        dst: IpAddr,
        priority: u8,
    },
    Announce(IpAddr),
    Probe(IpAddr),
    /// The daemon let go of what watched a deleted interface.
    ForgetLink(u32),
    /// A macvlan was created with this name.
    CreateMacvlan(String),
    /// The interface was set up (`true`) or down.
    LinkUp(u32, bool),
    DeleteLink(u32),
    /// A kernel parameter was written.
    Sysctl(String, String),
}

#[derive(Default)]
struct State {
    links: Vec<LinkInfo>,
    addresses: HashMap<u32, Vec<(IpAddr, u8)>>,
    log: Vec<Call>,
    /// Kind and parent of interfaces that are not plain devices (macvlans).
    kinds: HashMap<u32, (String, u32)>,
    admin_up: HashMap<u32, bool>,
    /// Kernel parameters; a key never written reads as "0".
    sysctls: HashMap<String, String>,
    /// Addresses another host answers for on the LAN, with its MAC (what a probe hears).
    answered: HashMap<IpAddr, [u8; 6]>,
}

/// The fake host; clones share it, so a test keeps one to look at while the daemon owns another.
#[derive(Clone, Default)]
pub struct FakeHost(Arc<Mutex<State>>);

impl FakeHost {
    /// A host with one interface (up) carrying `own` as its address.
    pub fn with_link(name: &str, index: u32, own: (IpAddr, u8)) -> FakeHost {
        let host = FakeHost::default();
        {
            let mut st = host.0.lock().unwrap();
            st.links.push(LinkInfo {
                index,
                name: name.to_string(),
                mac: [2, 0, 0, 0, 0, index as u8],
                up: true,
            });
            st.addresses.insert(index, vec![own]);
        }
        host
    }

    /// Another host answers for `addr` on the LAN from `mac` (`None`: nobody does any more).
    pub fn answer_for(&self, addr: IpAddr, mac: Option<[u8; 6]>) {
        let mut st = self.0.lock().unwrap();
        match mac {
            Some(m) => st.answered.insert(addr, m),
            None => st.answered.remove(&addr),
        };
    }

    /// Another interface (up), without addresses: one to track.
    pub fn add_link(&self, name: &str, index: u32) {
        let mut st = self.0.lock().unwrap();
        st.links.push(LinkInfo {
            index,
            name: name.to_string(),
            mac: [2, 0, 0, 0, 0, index as u8],
            up: true,
        });
        st.addresses.insert(index, Vec::new());
    }

    /// The interface goes away with its addresses (deleted; it may come back under a new index).
    pub fn remove_link(&self, name: &str) {
        let mut st = self.0.lock().unwrap();
        if let Some(pos) = st.links.iter().position(|l| l.name == name) {
            let link = st.links.remove(pos);
            st.addresses.remove(&link.index);
        }
    }

    /// Someone else (DHCP, networkd) gives the interface an address.
    pub fn add_own(&self, index: u32, own: (IpAddr, u8)) {
        let mut st = self.0.lock().unwrap();
        st.addresses
            .get_mut(&index)
            .expect("a known interface")
            .push(own);
    }

    /// An interface of another kind (`kind` on `parent`, with `mac`), e.g. someone else's macvlan.
    pub fn add_kind_link(&self, name: &str, index: u32, kind: &str, parent: u32, mac: [u8; 6]) {
        let mut st = self.0.lock().unwrap();
        st.links.push(LinkInfo {
            index,
            name: name.to_string(),
            mac,
            up: true,
        });
        st.addresses.insert(index, Vec::new());
        st.kinds.insert(index, (kind.to_string(), parent));
        st.admin_up.insert(index, true);
    }

    /// The interface `name`, if there is one now.
    pub fn link(&self, name: &str) -> Option<LinkInfo> {
        let st = self.0.lock().unwrap();
        st.links.iter().find(|l| l.name == name).cloned()
    }

    /// Whether interface `index` is administratively up.
    pub fn is_admin_up(&self, index: u32) -> bool {
        self.0.lock().unwrap().admin_up.get(&index) == Some(&true)
    }

    /// A kernel parameter's value ("0" when never written).
    pub fn sysctl(&self, key: &str) -> String {
        let st = self.0.lock().unwrap();
        st.sysctls.get(key).cloned().unwrap_or_else(|| "0".into())
    }

    /// Everything done so far, and forget it.
    pub fn take_log(&self) -> Vec<Call> {
        std::mem::take(&mut self.0.lock().unwrap().log)
    }

    /// Whether the interface has the address now.
    pub fn has(&self, index: u32, addr: IpAddr) -> bool {
        self.0
            .lock()
            .unwrap()
            .addresses
            .get(&index)
            .is_some_and(|l| l.iter().any(|(a, _)| *a == addr))
    }

    /// The address goes away by itself (its lifetime ran out), without the daemon asking.
    pub fn remove_now(&self, index: u32, addr: IpAddr) {
        let mut st = self.0.lock().unwrap();
        st.addresses
            .get_mut(&index)
            .expect("a known interface")
            .retain(|(a, _)| *a != addr);
    }

    fn log(&self, call: Call) {
        self.0.lock().unwrap().log.push(call);
    }
}

impl Kernel for FakeHost {
    fn link_by_name(&self, name: &str) -> Result<LinkInfo> {
        let st = self.0.lock().unwrap();
        st.links
            .iter()
            .find(|l| l.name == name)
            .cloned()
            .ok_or_else(|| anyhow!("no interface named {name}"))
    }

    fn find_link(&self, name: &str) -> Result<Option<LinkInfo>> {
        let st = self.0.lock().unwrap();
        Ok(st.links.iter().find(|l| l.name == name).cloned())
    }

    fn forget_link(&mut self, index: u32) {
        self.log(Call::ForgetLink(index));
    }

    fn addresses(&self, index: u32) -> Result<Vec<(IpAddr, u8)>> {
        self.0
            .lock()
            .unwrap()
            .addresses
            .get(&index)
            .cloned()
            .ok_or_else(|| anyhow!("no interface with index {index}"))
    }

    fn address_details(&self, index: u32) -> Result<Vec<AddrDetails>> {
        Ok(self
            .addresses(index)?
            .into_iter()
            .map(|(addr, prefix_len)| AddrDetails {
                addr,
                prefix_len,
                flags: 0,
                valid_lft: None,
                preferred_lft: None,
            })
            .collect())
    }

    fn add_address(
        &self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
        _lifetime: Option<Duration>,
    ) -> Result<()> {
        let mut st = self.0.lock().unwrap();
        let list = st
            .addresses
            .get_mut(&index)
            .ok_or_else(|| anyhow!("no interface with index {index}"))?;
        if !list.iter().any(|(a, _)| *a == addr) {
            list.push((addr, prefix_len));
        }
        st.log.push(Call::Add(addr));
        Ok(())
    }

    fn remove_address(&self, index: u32, addr: IpAddr, _prefix_len: u8) -> Result<()> {
        let mut st = self.0.lock().unwrap();
        let list = st
            .addresses
            .get_mut(&index)
            .ok_or_else(|| anyhow!("no interface with index {index}"))?;
        list.retain(|(a, _)| *a != addr);
        st.log.push(Call::Remove(addr));
        Ok(())
    }

    /// Like the kernel, a refresh of an address that is gone adds it again.
    fn refresh(&mut self, index: u32, addr: IpAddr, len: u8, _life: Duration) -> io::Result<()> {
        let mut st = self.0.lock().unwrap();
        let list = st
            .addresses
            .get_mut(&index)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))?;
        if !list.iter().any(|(a, _)| *a == addr) {
            list.push((addr, len));
        }
        st.log.push(Call::Refresh(addr));
        Ok(())
    }

    fn refresh_fd(&self) -> Option<RawFd> {
        None
    }

    fn refresh_errors(&mut self) -> Vec<(Option<IpAddr>, io::Error)> {
        Vec::new()
    }

    fn ignore_added_v6(&mut self, _held: Vec<(u32, Ipv6Addr)>) -> io::Result<()> {
        Ok(())
    }

    fn open_receiver(&mut self, _ifname: &str, _index: u32, _v6: bool) -> Result<Arc<dyn Receive>> {
        Ok(Arc::new(NoPackets))
    }

    fn open_sender(
        &mut self,
        _ifname: &str,
        _index: u32,
        _src: IpAddr,
        dst: IpAddr,
    ) -> Result<Arc<dyn AdvertSender>> {
        Ok(Arc::new(Sender {
            host: self.clone(),
            dst,
        }))
    }

    fn open_announcer(&mut self, _index: u32, _mac: [u8; 6]) -> Result<Arc<dyn Announce>> {
        Ok(Arc::new(self.clone()))
    }

    fn vmac_lookup(&self, name: &str) -> Result<Option<VmacLink>> {
        let st = self.0.lock().unwrap();
        Ok(st.links.iter().find(|l| l.name == name).map(|l| {
            let kind = st.kinds.get(&l.index);
            VmacLink {
                link: l.clone(),
                kind: kind.map(|k| k.0.clone()),
                parent: kind.map(|k| k.1),
                mode: None,
                admin_up: st.admin_up.get(&l.index) == Some(&true),
            }
        }))
    }

    fn create_macvlan(&self, parent: u32, name: &str, mac: [u8; 6]) -> Result<()> {
        let mut st = self.0.lock().unwrap();
        if st.links.iter().any(|l| l.name == name) {
            return Err(anyhow!("interface {name} exists"));
        }
        let index = st.links.iter().map(|l| l.index).max().unwrap_or(0) + 100;
        st.links.push(LinkInfo {
            index,
            name: name.to_string(),
            mac,
            up: false,
        });
        st.addresses.insert(index, Vec::new());
        st.kinds.insert(index, ("macvlan".into(), parent));
        st.admin_up.insert(index, false);
        st.log.push(Call::CreateMacvlan(name.to_string()));
        Ok(())
    }

    fn set_link_up(&self, index: u32, up: bool) -> Result<()> {
        let mut st = self.0.lock().unwrap();
        let link = st
            .links
            .iter_mut()
            .find(|l| l.index == index)
            .ok_or_else(|| anyhow!("no interface with index {index}"))?;
        link.up = up;
        st.admin_up.insert(index, up);
        st.log.push(Call::LinkUp(index, up));
        Ok(())
    }

    fn delete_link(&self, index: u32) -> Result<()> {
        let mut st = self.0.lock().unwrap();
        st.links.retain(|l| l.index != index);
        st.addresses.remove(&index);
        st.kinds.remove(&index);
        st.log.push(Call::DeleteLink(index));
        Ok(())
    }

    fn read_sysctl(&self, key: &str) -> io::Result<String> {
        Ok(self.sysctl(key))
    }

    fn write_sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        let mut st = self.0.lock().unwrap();
        st.sysctls.insert(key.to_string(), value.to_string());
        st.log
            .push(Call::Sysctl(key.to_string(), value.to_string()));
        Ok(())
    }

    fn who_answers(
        &mut self,
        _index: u32,
        _mac: [u8; 6],
        addr: IpAddr,
        _wait: Duration,
    ) -> Result<Option<[u8; 6]>> {
        self.log(Call::Probe(addr));
        Ok(self.0.lock().unwrap().answered.get(&addr).copied())
    }

    fn watch_conflicts(
        &mut self,
        _index: u32,
        _mac: [u8; 6],
        _v6: bool,
        _tx: mpsc::Sender<Sighting>,
    ) -> Result<()> {
        Ok(())
    }
}

/// Tests hand packets to the daemon directly (`Daemon::on_packet`).
struct NoPackets;

impl Receive for NoPackets {
    fn fd(&self) -> Option<RawFd> {
        None
    }

    fn try_recv(&self, _buf: &mut [u8]) -> io::Result<Option<Datagram>> {
        Ok(None)
    }
}

struct Sender {
    host: FakeHost,
    dst: IpAddr,
}

impl AdvertSender for Sender {
    fn send(&self, packet: &[u8]) -> io::Result<()> {
        // The priority is the third byte of VRRPv2 and v3 headers alike.
        self.host.log(Call::Advert {
            dst: self.dst,
            priority: packet[2],
        });
        Ok(())
    }
}

impl Announce for FakeHost {
    fn announce(&self, addr: IpAddr) -> io::Result<()> {
        self.log(Call::Announce(addr));
        Ok(())
    }

    fn probe(&self, addr: IpAddr) -> io::Result<()> {
        self.log(Call::Probe(addr));
        Ok(())
    }
}
