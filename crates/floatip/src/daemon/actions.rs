//! Carrying out what the cores ask, in order: adverts, adding and removing VIPs, announcements,
//! transitions (log, counters, hooks, history); and the last-resort removal when a stop runs late.

use crate::config::Vip;
use crate::control::events::{EventKind, EventRecord};
use crate::hooks::state_after;
use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use tracing::{debug, error, info, warn};
use vrrp::packet;
use vrrp::{Action, State};

use super::attach::NO_LINK;
use super::claim_probe::AfterProbe;
use super::runtime::Record;
use super::vmac::set_vmac_up;
use super::{Daemon, HOOK_DRAIN, PROBE_EVERY};
use crate::net::kernel::Block;

impl Daemon {
    /// Execute everything the cores asked for, in order.
    pub(super) fn drain_actions(&mut self, now: Instant) {
        for i in 0..self.instances.len() {
            let mut touched = false;
            while let Some(action) = self.instances[i].core.poll_action() {
                touched = true;
                self.execute(i, now, action);
            }
            if !touched {
                continue;
            }
            let rt = &mut self.instances[i];
            rt.drop_stale_probe();
            let serving = rt.hold.held()
                && rt.core.state() == State::Master
                && rt.core.handoff().is_none()
                && !rt.restoring();
            rt.hold.allow_announcements(serving);
            let probe = (rt.hold.held() && rt.core.state() == State::Master)
                || rt.conflicts.yielded.is_some();
            if probe != rt.next_probe.is_some() {
                rt.next_probe = probe.then(|| now + PROBE_EVERY);
                rt.probed = false;
            }
        }
        if self.instances.iter().any(|r| r.retiring) {
            let mut gone = Vec::new();
            self.instances.retain_mut(|r| {
                let keep = !(r.retiring && r.core.is_stopped());
                if !keep {
                    gone.extend(r.vmac.take());
                }
                keep
            });
            self.drop_unused_vmacs(gone);
            self.status_dirty = true;
        }
        if std::mem::take(&mut self.held_changed) {
            // The IPv6 VIPs we hold: the kernel's notifications of their refreshes wake nobody.
            let held = self
                .instances
                .iter()
                .filter(|rt| rt.hold.held())
                .flat_map(|rt| {
                    rt.cfg.addresses.iter().filter_map(|v| match v.addr {
                        IpAddr::V6(a) => Some((rt.vip_index(), a)),
                        IpAddr::V4(_) => None,
                    })
                })
                .collect();
            if let Err(err) = self.kernel.ignore_added_v6(held) {
                debug!("cannot update the netlink monitor's filter: {err}");
            }
        }
    }

    pub(super) fn execute(&mut self, i: usize, now: Instant, action: Action) {
        let rt = &mut self.instances[i];
        match action {
            Action::SendAdvert(advert) => {
                // One sequence number per advert: every unicast copy carries the same (keepalived).
                let auth = rt.auth.tx(super::auth::wall_now());
                for (dst, sender) in &rt.destinations {
                    rt.tx_buf.clear();
                    packet::encode_auth_into(
                        &advert,
                        rt.primary,
                        *dst,
                        rt.send_checksum,
                        auth,
                        &mut rt.tx_buf,
                    );
                    match sender.send(&rt.tx_buf) {
                        Ok(()) => rt.counters.adverts_sent += 1,
                        Err(err) => {
                            rt.counters.send_errors += 1;
                            // Once per doubling is enough at 2am; the counter has the rest.
                            if rt.counters.send_errors.is_power_of_two() {
                                warn!(instance = %rt.cfg.name, "cannot send an advert to {dst}: {err} ({} errors so far)", rt.counters.send_errors);
                            }
                        }
                    }
                }
            }
            Action::AddAddresses(addrs) => {
                // The virtual MAC comes up with the claim: the advert that follows goes out from it.
                if let Some(v) = rt.vmac.as_mut() {
                    set_vmac_up(&*self.kernel, &rt.cfg.name, v, rt.primary, true);
                }
                // The guard hears of a VIP before the kernel has it: a crash in between leaves none.
                rt.hold.take(now, rt.refresh_period(), &rt.cfg.announce);
                self.held_changed = true;
                self.publish_held();
                let rt = &mut self.instances[i];
                if rt.claim_waits_for_release() {
                    // The master we preempt may still hold the VIP; it lets go when it hears our
                    // advert (sent with this claim): add it once nobody else answers, so the two
                    // never hold it at once.
                    info!(instance = %rt.cfg.name, "preempting: {} goes up once the old master has let go", rt.vips().join(", "));
                    let vips = rt.cfg.addresses.clone();
                    rt.start_probe(now, AfterProbe::Restore(vips));
                    return;
                }
                let vips: Vec<Vip> = addrs
                    .into_iter()
                    .map(|addr| Vip {
                        addr,
                        prefix_len: rt.prefix_len(addr),
                    })
                    .collect();
                rt.put_up_vips(&*self.kernel, &vips, now, true);
            }
            Action::RemoveAddresses(addrs) => {
                if rt.restoring() {
                    rt.probe = None;
                }
                rt.hold.release();
                self.held_changed = true;
                rt.conflicts.reset_sightings();
                if rt.link.index == NO_LINK {
                    info!(instance = %rt.cfg.name, "{} went with interface {}", addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "), rt.cfg.interface);
                    return;
                }
                for addr in addrs {
                    let len = rt.prefix_len(addr);
                    match self.kernel.remove_address(rt.vip_index(), addr, len) {
                        Ok(()) => {
                            info!(instance = %rt.cfg.name, "removed {addr}/{len} from {}", rt.vmac.as_ref().map_or(&rt.cfg.interface, |v| &v.name))
                        }
                        Err(err) => {
                            error!(instance = %rt.cfg.name, "cannot remove {addr}/{len}: {err:#}")
                        }
                    }
                }
                if let Some(v) = rt.vmac.as_mut() {
                    set_vmac_up(&*self.kernel, &rt.cfg.name, v, rt.primary, false);
                }
                self.publish_held();
            }
            Action::Announce(addrs) => rt.announce(addrs),
            Action::SpeakV2 { from, interval } => {
                rt.policy.version = vrrp::Version::V2;
                rt.policy.interval_cs = (interval.as_millis() / 10) as u16;
                rt.policy.follow_v2 = false;
                let why = format!(
                    "following the VRRPv2 router {from} heard on VRID {} (it cannot hear VRRPv3): VRRPv2 adverts every {}",
                    rt.cfg.vrid,
                    crate::config::format_duration(interval)
                );
                warn!(
                    instance = %rt.cfg.name,
                    "{why}; to choose, set version = 2 on this instance, or version = 3 here and on {from}"
                );
                rt.version_why = Some(why);
                self.status_dirty = true;
            }
            Action::Probe(_) => rt.start_probe(now, AfterProbe::Claim),
            Action::Transition(t) => {
                self.status_dirty = true;
                info!(instance = %rt.cfg.name, "{} -> {}: {}", t.from, t.to, t.reason);
                *rt.counters.transitions.entry((t.from, t.to)).or_default() += 1;
                if let Some(hooks) = &rt.hooks {
                    hooks.transition(state_after(t.to), t.from.as_str(), &t.reason, &rt.vips());
                }
                // The stream's order is the hooks' order: both are fed here, one transition at a time.
                let mut rec =
                    EventRecord::new(EventKind::Transition, Some(&rt.cfg.name), t.reason.clone());
                rec.from = Some(t.from.as_str().to_string());
                rec.to = Some(state_after(t.to).to_string());
                let age = now.saturating_duration_since(t.at);
                let at = SystemTime::now() - age;
                // The same time as the history's.
                rec.at = crate::control::unix_secs(at);
                rt.events.publish(rec);
                rt.record(Record {
                    at,
                    from: t.from,
                    to: t.to,
                    reason: t.reason,
                });
            }
        }
    }

    /// Last resort when a stop runs out of time: take every VIP we hold off the interface.
    pub(super) fn remove_all(&mut self) {
        for rt in &mut self.instances {
            if !rt.hold.held() {
                continue;
            }
            for vip in &rt.cfg.addresses {
                let _ = self
                    .kernel
                    .remove_address(rt.vip_index(), vip.addr, vip.prefix_len);
            }
            rt.hold.release();
        }
        self.publish_held();
    }

    /// Let queued hooks (the stop hooks last) finish, bounded.
    pub(super) fn drain_hooks(&mut self) {
        for rt in &mut self.instances {
            if let Some(h) = rt.hooks.take() {
                h.drain(HOOK_DRAIN).block();
            }
        }
    }
}
