//! Setting an instance up: its interface and sockets (through [`super::attach`]; one not there yet
//! means FAULT, not an error), its checks, witness and hooks ([`Daemon::prepare`], which changes nothing on the
//! host), then starting its election ([`Daemon::start`]).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::{info, warn};
use vrrp::validate::RxPolicy;
use vrrp::{ChecksumMode, Event};

use super::attach::{Attachment, NoInterface, NO_LINK};
use super::hold::VipHold;
use super::runtime::{Counters, Runtime, Tracked};
use super::{Daemon, MAX_PACKET, WITNESS_EVERY};
use crate::config::{self, InstanceConfig};
use crate::conflict::Conflicts;
use crate::health::track_file::{self, TrackFileState};
use crate::health::witness;
use crate::health::{self, CheckState};
use crate::hooks;
use crate::net::netlink;

impl Daemon {
    /// Build the runtime of one instance: resolve its interfaces, open (or share) its sockets, start its
    /// checks, witness, probe and hooks. Changes nothing on the host.
    ///
    /// An IPv6 link-local address still under duplicate address detection cannot be bound yet: it is
    /// waited for up to `dad_patience` (at start-up, when the kernel has just brought the link up).
    pub(super) fn prepare(
        &mut self,
        inst: &InstanceConfig,
        dad_patience: Duration,
    ) -> Result<Runtime> {
        let tracked = self.resolve_tracked(inst)?;
        let v6 = inst.is_v6();
        let vips: Vec<IpAddr> = inst.addresses.iter().map(|v| v.addr).collect();
        let attached = self.attach(inst, dad_patience)?;
        let (a, detached) = match attached {
            Ok(a) => (a, None),
            Err(u) => {
                warn!(instance = %inst.name, "starting in FAULT: {}; joining the election once it is there", u.reason);
                let unspecified = if v6 {
                    IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
                };
                let link = u.link_or_placeholder(&inst.interface);
                let waiting = Attachment {
                    sock_key: (link.index, v6),
                    link,
                    primary: unspecified,
                    announcer: Arc::new(NoInterface(inst.interface.clone())),
                    own_addresses: Vec::new(),
                    destinations: Vec::new(),
                    vmac: None,
                };
                (waiting, Some(u.reason))
            }
        };
        let Attachment {
            link,
            primary,
            sock_key: key,
            announcer,
            own_addresses,
            destinations,
            vmac,
        } = a;
        let policy = RxPolicy {
            vrid: inst.vrid,
            version: inst.version,
            interval_cs: interval_cs(inst.advert_interval),
            checksum: inst.checksum,
            own_addresses,
            unicast_peers: inst.unicast_peers.clone(),
            virtual_addresses: vips.clone(),
            follow_v2: inst.follows_v2(),
        };
        let send_checksum = match inst.checksum {
            ChecksumMode::MessageOnly => ChecksumMode::MessageOnly,
            _ => ChecksumMode::PseudoHeader,
        };
        let id = self.next_id;
        self.next_id += 1;
        let check_tasks = health::spawn(id, &inst.name, &inst.checks, self.chans.checks.clone());
        let track_task = track_file::spawn(
            id,
            &inst.name,
            &inst.track_files,
            self.chans.track_files.clone(),
        );
        let witness_task = witness::spawn(
            id,
            inst.witness.clone(),
            WITNESS_EVERY,
            self.chans.witness.clone(),
        );
        Ok(Runtime {
            id,
            core: vrrp::Instance::new(inst.vrrp_config(primary)),
            cfg: inst.clone(),
            link,
            primary,
            detached,
            sock_key: key,
            vmac,
            announcer,
            policy,
            version_why: None,
            destinations,
            send_checksum,
            auth: vrrp::auth::AuthState::new(inst.auth.clone()),
            auth_log: Default::default(),
            tx_buf: Vec::with_capacity(MAX_PACKET),
            hold: VipHold::default(),
            history: VecDeque::new(),
            speakers: HashMap::new(),
            counters: Counters::default(),
            checks: CheckState::for_checks(&inst.checks),
            track_files: TrackFileState::for_files(&inst.track_files),
            tracked,
            conflicts: Conflicts::default(),
            clashes: Default::default(),
            fault_sent: None,
            priority_sent: inst.priority.min(vrrp::TAKEOVER_PRIORITY),
            inhibit_sent: None,
            group_inhibit: None,
            group_fault: None,
            witness_inhibit: (!inst.witness.is_empty())
                .then(|| "witness: first probe pending".to_string()),
            hooks: hooks::spawn_configured(&inst.name, &inst.notify),
            next_probe: None,
            probed: false,
            heard_since_probe: false,
            retiring: false,
            probe: None,
            probe_cleared: false,
            check_tasks,
            witness_task,
            track_task,
            events: self.events.clone(),
        })
    }

    pub(super) fn resolve_tracked(&self, inst: &InstanceConfig) -> Result<Vec<Tracked>> {
        let mut tracked = Vec::new();
        for name in &inst.track_interfaces {
            let l = self
                .kernel
                .link_by_name(name)
                .with_context(|| format!("instance {}: track_interfaces", inst.name))?;
            tracked.push(Tracked {
                name: name.clone(),
                index: l.index,
                up: l.up,
            });
        }
        Ok(tracked)
    }

    /// The address adverts go out from (see [`Daemon::prepare`]), or why there is none usable yet
    /// (none at all, still tentative after `dad_patience`, or duplicate address detection failed).
    pub(super) fn settled_primary(
        &self,
        inst: &InstanceConfig,
        index: u32,
        vips: &[IpAddr],
        dad_patience: Duration,
    ) -> Result<Result<IpAddr, String>> {
        let give_up = Instant::now() + dad_patience;
        let mut said = false;
        loop {
            let all = self.kernel.address_details(index)?;
            let Some(d) = netlink::pick_primary(&all, inst.is_v6(), vips)
                .and_then(|addr| all.into_iter().find(|d| d.addr == addr))
            else {
                return Ok(Err(format!(
                    "{} has no {} address to send adverts from; {}",
                    inst.interface,
                    if inst.is_v6() {
                        "IPv6 link-local"
                    } else {
                        "IPv4"
                    },
                    if inst.is_v6() {
                        "bring the interface up so the kernel assigns fe80::/64"
                    } else {
                        "give the host its own address on that interface (the VIP cannot be it)"
                    }
                )));
            };
            let addr = d.addr;
            if d.is_dad_failed() {
                return Ok(Err(format!(
                    "{addr} on {} failed duplicate address detection (another host uses it); \
                     give the interface a unique link-local address",
                    inst.interface
                )));
            }
            if !d.is_tentative() {
                return Ok(Ok(addr));
            }
            if Instant::now() >= give_up {
                return Ok(Err(format!(
                    "{addr} on {} is still tentative (duplicate address detection is running), \
                     and adverts cannot be sent from it yet",
                    inst.interface
                )));
            }
            if !std::mem::replace(&mut said, true) {
                info!(instance = %inst.name, "waiting for duplicate address detection of {addr} on {}", inst.interface);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Remove stale copies of the instance's VIPs (a previous run killed before their lifetime ran out),
    /// then start its election, with any override that survived a restart.
    pub(super) fn start(&mut self, mut rt: Runtime, now: Instant) -> Result<()> {
        let present = if rt.link.index == NO_LINK {
            Vec::new()
        } else {
            self.kernel.addresses(rt.vip_index())?
        };
        for vip in &rt.cfg.addresses {
            if present.iter().any(|(a, _)| *a == vip.addr) {
                warn!(instance = %rt.cfg.name, vip = %vip, "removing a stale copy of our VIP (left by an earlier run, or added by hand)");
                self.kernel
                    .remove_address(rt.vip_index(), vip.addr, vip.prefix_len)?;
            }
        }
        info!(
            instance = %rt.cfg.name,
            "managing {} on {} (vrid {}, priority {}, VRRPv{}, adverts every {}, {}, from {})",
            rt.vips().join(", "),
            rt.cfg.interface,
            rt.cfg.vrid,
            rt.cfg.priority,
            rt.cfg.version.number(),
            config::format_duration(rt.cfg.advert_interval),
            if rt.cfg.unicast_peers.is_empty() {
                "multicast".to_string()
            } else {
                format!("unicast to {:?}", rt.cfg.unicast_peers)
            },
            rt.primary,
        );
        // Before the first witness answer or check result nobody knows this host can serve: at 10 ms
        // adverts master-down passes long before either can arrive.
        rt.reevaluate_inhibit(now);
        if rt.detached.is_some() {
            // FAULT from the start, with the missing piece as its reason.
            rt.reevaluate(now);
        }
        rt.core.handle_event(now, Event::Startup);
        if !rt.link.up {
            rt.core.handle_event(now, Event::LinkDown);
        }
        rt.reevaluate(now);
        if let Some(o) = self.overrides.get(&rt.cfg.name) {
            info!(instance = %rt.cfg.name, "restoring the operator's {o:?} override from {}", self.state_dir.display());
            rt.core.handle_event(now, Event::Override(*o));
        }
        self.instances.push(rt);
        Ok(())
    }
}

pub(super) fn interval_cs(d: Duration) -> u16 {
    u16::try_from(d.as_millis() / 10).unwrap_or(u16::MAX)
}
