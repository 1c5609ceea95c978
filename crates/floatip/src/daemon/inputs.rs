//! The loop's inputs ([`super::Input`]), one handler each: timers, refreshes and probes that are due,
//! VRRP packets, link and address events, check and witness reports, and sightings of another host
//! answering for a VIP. (The event stream `floatip events` is another thing: `control::events`.)

use std::time::Instant;

use tracing::{debug, info, warn};
use vrrp::validate::{self, DropReason, Received};
use vrrp::{Event, State};

use super::attach::NO_LINK;
use super::claim_probe::AfterProbe;
use super::clash;
use super::runtime::{SockKey, Speaker};
use super::{Daemon, PROBE_EVERY};
use crate::conflict::Sighting;
use crate::conflict::Verdict;
use crate::control;
use crate::control::events::{EventKind, EventRecord};
use crate::health::track_file::TrackFileReport;
use crate::health::witness::WitnessReport;
use crate::health::CheckReport;
use crate::net::netlink::NetEvent;
use crate::net::vrrp_socket::Datagram;

impl Daemon {
    pub(super) fn on_timer(&mut self, now: Instant) {
        for rt in &mut self.instances {
            if rt.core.poll_timeout().is_some_and(|t| t <= now) {
                rt.core.handle_timeout(now);
            }
        }
    }

    /// Refresh VIP lifetimes, periodic announcements and conflict probes that are due.
    pub(super) fn refresh(&mut self, now: Instant) {
        // A refresh adds a VIP that is gone: the clock is read afresh, not taken from the wakeup.
        self.check_stall(Instant::now());
        for rt in &mut self.instances {
            if rt.next_probe.is_some_and(|t| t <= now + rt.refresh_slack()) {
                rt.next_probe = Some(now + PROBE_EVERY);
                // The last round's answers, if any, have long arrived through the watch.
                let quiet = std::mem::replace(&mut rt.probed, true) && !rt.heard_since_probe;
                rt.heard_since_probe = false;
                if quiet && rt.conflicts.quiet_round(now) {
                    info!(instance = %rt.cfg.name, "nobody else answers for {} any more; back in the election", rt.vips().join(", "));
                    rt.reevaluate(now);
                }
                for vip in &rt.cfg.addresses {
                    if let Err(err) = rt.announcer.probe(vip.addr) {
                        debug!(instance = %rt.cfg.name, "conflict probe for {vip} failed: {err}");
                    }
                }
            }
            let (slack, every) = (rt.refresh_slack(), rt.refresh_period());
            if rt.hold.refresh_due(now, slack, every) {
                // While a VIP is being put back, a refresh would add it before the probe says it may
                // (the kernel creates a missing address on a refresh).
                for vip in rt.cfg.addresses.iter().filter(|_| !rt.restoring()) {
                    if let Err(err) = self.kernel.refresh(
                        rt.vip_index(),
                        vip.addr,
                        vip.prefix_len,
                        rt.cfg.address_lifetime,
                    ) {
                        warn!(instance = %rt.cfg.name, vip = %vip, "cannot refresh the VIP's lifetime: {err}");
                    }
                }
            }
            if rt.hold.announce_refresh_due(now, &rt.cfg.announce) {
                for vip in &rt.cfg.addresses {
                    if let Err(err) = rt.announcer.announce(vip.addr) {
                        debug!(instance = %rt.cfg.name, "periodic announcement failed: {err}");
                    }
                }
            }
        }
    }

    /// The kernel refused lifetime refreshes: say which VIP (the next refresh tries again).
    pub(super) fn on_refresh_errors(&mut self) {
        for (addr, err) in self.kernel.refresh_errors() {
            let owner = addr.and_then(|a| {
                self.instances
                    .iter()
                    .find(|rt| rt.cfg.addresses.iter().any(|v| v.addr == a))
            });
            match (owner, addr) {
                (Some(rt), Some(a)) => {
                    warn!(instance = %rt.cfg.name, "the kernel refused to refresh the lifetime of {a}: {err}")
                }
                (None, Some(a)) => {
                    warn!("the kernel refused to refresh the lifetime of {a}: {err}")
                }
                _ => warn!("the kernel refused a VIP lifetime refresh: {err}"),
            }
        }
    }

    /// Read what a readable VRRP socket holds (a bounded batch: the socket is level-triggered, so the
    /// rest wakes the next wait).
    pub(super) fn on_readable(&mut self, now: Instant, token: u64, buf: &mut [u8]) {
        let Some(&key) = self.socket_keys.get(token as usize) else {
            return;
        };
        let Some(sock) = self.sockets.get(&key).cloned() else {
            return;
        };
        for _ in 0..64 {
            match sock.try_recv(buf) {
                Ok(Some(d)) => self.on_packet(now, key, &d, &buf[..d.len]),
                Ok(None) => return,
                Err(err) => {
                    self.receive_errors += 1;
                    if self.receive_errors.is_power_of_two() {
                        warn!(
                            "receive error on the VRRP socket: {err} ({} so far)",
                            self.receive_errors
                        );
                    }
                    return;
                }
            }
        }
    }

    /// One VRRP packet read from the socket `key`: every packet ends up counted, as an advert of an
    /// instance, a drop of an instance (by reason) or a drop of the socket's (no instance took it).
    pub(super) fn on_packet(&mut self, now: Instant, key: SockKey, d: &Datagram, bytes: &[u8]) {
        let Some(vrid) = validate::peek_vrid(bytes) else {
            self.count_unmatched(key, "truncated");
            return;
        };
        let rx = Received {
            src: d.src,
            dst: d.dst,
            ttl: d.ttl,
        };
        let mut matched = false;
        let wall = super::auth::wall_now();
        for rt in self
            .instances
            .iter_mut()
            .filter(|r| r.hears_on(key) && r.cfg.vrid == vrid && r.detached.is_none())
        {
            matched = true;
            match validate::validate_auth(bytes, &rx, &rt.policy, &mut rt.auth, wall) {
                Ok(advert) => {
                    rt.counters.adverts_received += 1;
                    if let Some((src, skew)) = rt.auth.skew_warning.take() {
                        if rt.auth_log.note(now, "clock_skew").is_some() {
                            warn!(instance = %rt.cfg.name, src = %src, "the clock of {src} is {} s {} ours: past half the auth time_window; fix NTP before its adverts go stale", skew.abs(), if skew > 0 { "behind" } else { "ahead of" });
                        }
                    }
                    if let Some(ended) = rt.conflicts.advert_heard() {
                        info!(instance = %rt.cfg.name, src = %d.src, "adverts on VRID {} are heard again: the election decides, no longer the conflict rule (was: {ended})", rt.cfg.vrid);
                        rt.reevaluate(now);
                    }
                    rt.speakers.insert(
                        d.src,
                        Speaker {
                            priority: advert.priority,
                            interval_cs: advert.interval_cs,
                            addresses: advert.addresses.clone(),
                            last_heard: now,
                        },
                    );
                    rt.core
                        .handle_event(now, Event::Advert { src: d.src, advert });
                }
                Err(reason) => {
                    *rt.counters.drops.entry(reason.label()).or_default() += 1;
                    if super::auth::is_auth(reason.label()) {
                        if let Some(quiet) = rt.auth_log.note(now, reason.label()) {
                            let more = if quiet > 0 {
                                format!(" ({quiet} more since the last line)")
                            } else {
                                String::new()
                            };
                            warn!(instance = %rt.cfg.name, src = %d.src, reason = reason.label(), "dropped an advert from {}: {reason}{more}", d.src);
                        }
                    }
                    if let DropReason::AddressSet { advert, .. } = &reason {
                        if rt.clashes.heard(now, d.src, advert) {
                            // Who is it? Its answer comes back through the ARP/ND watch.
                            if let Err(err) = rt.announcer.probe(d.src) {
                                debug!(instance = %rt.cfg.name, "cannot ask who {} is: {err}", d.src);
                            }
                            let text = clash::describe(
                                &rt.cfg.name,
                                rt.cfg.vrid,
                                d.src,
                                advert,
                                &rt.policy.virtual_addresses,
                            );
                            warn!("{text}");
                            rt.events.publish(EventRecord::new(
                                EventKind::Clash,
                                Some(&rt.cfg.name),
                                text,
                            ));
                        }
                    }
                    debug!(instance = %rt.cfg.name, src = %d.src, "dropped an advert: {reason}");
                }
            }
        }
        if !matched {
            self.count_unmatched(key, "vrid");
        }
    }

    fn count_unmatched(&mut self, key: SockKey, reason: &'static str) {
        *self
            .unmatched_drops
            .entry(key)
            .or_default()
            .entry(reason)
            .or_default() += 1;
    }

    pub(super) fn on_net_event(&mut self, now: Instant, ev: NetEvent) {
        match ev {
            NetEvent::Link { index, name, up } => {
                self.on_link_named(now, index, &name);
                for rt in &mut self.instances {
                    if rt.link.index == index && rt.link.up != up {
                        rt.link.up = up;
                        if up {
                            info!(instance = %rt.cfg.name, "link {} is up", rt.cfg.interface);
                            rt.core.handle_event(now, Event::LinkUp);
                        } else {
                            warn!(instance = %rt.cfg.name, "link {} is down", rt.cfg.interface);
                            rt.core.handle_event(now, Event::LinkDown);
                        }
                    }
                    let mut changed = false;
                    for t in rt
                        .tracked
                        .iter_mut()
                        .filter(|t| t.index == index && t.up != up)
                    {
                        t.up = up;
                        changed = true;
                        info!(instance = %rt.cfg.name, "tracked interface {} is {}", t.name, if up { "up" } else { "down" });
                    }
                    if changed {
                        rt.reevaluate(now);
                    }
                }
            }
            NetEvent::LinkRemoved { index, .. } => {
                self.detach_link(now, index);
                for rt in &mut self.instances {
                    let mut changed = false;
                    for t in rt.tracked.iter_mut().filter(|t| t.index == index && t.up) {
                        t.up = false;
                        changed = true;
                        warn!(instance = %rt.cfg.name, "tracked interface {} was deleted", t.name);
                    }
                    if changed {
                        rt.reevaluate(now);
                    }
                }
            }
            NetEvent::AddressRemoved { index, addr, .. } => {
                for rt in self.instances.iter_mut().filter(|r| r.vip_index() == index) {
                    if !rt.hold.held() || rt.core.state() != State::Master {
                        continue;
                    }
                    let Some(vip) = rt.cfg.addresses.iter().find(|v| v.addr == addr) else {
                        continue;
                    };
                    warn!(instance = %rt.cfg.name, vip = %vip, "our VIP was removed while we are master (by hand, or its lifetime ran out); putting it back once nobody else answers for it");
                    rt.start_probe(now, AfterProbe::Restore(vec![*vip]));
                }
            }
            NetEvent::AddressAdded { index, addr, .. } => {
                // An instance waiting for an address on this interface may go ahead now.
                let waiting: Vec<usize> = (0..self.instances.len())
                    .filter(|&i| {
                        let rt = &self.instances[i];
                        rt.detached.is_some() && rt.link.index == index && !rt.retiring
                    })
                    .collect();
                for i in waiting {
                    self.try_attach(now, i);
                }
                // Our VIP appearing while we do not hold it is the two-owner mistake (an `ip addr add` by
                // hand on the backup): the daemon manages this address, so it takes the copy away.
                for rt in self.instances.iter_mut().filter(|r| r.vip_index() == index) {
                    if rt.hold.held() || rt.retiring {
                        continue;
                    }
                    let Some(vip) = rt.cfg.addresses.iter().find(|v| v.addr == addr) else {
                        continue;
                    };
                    warn!(instance = %rt.cfg.name, vip = %vip, "our VIP was added to {} while we are {} (by hand?): that makes two owners, removing it; use `floatip takeover {}` to move it here", rt.cfg.interface, rt.core.state(), rt.cfg.name);
                    if let Err(err) = self.kernel.remove_address(index, vip.addr, vip.prefix_len) {
                        warn!(instance = %rt.cfg.name, vip = %vip, "cannot remove it: {err:#}");
                    }
                }
            }
        }
    }

    /// A link called `name` has index `index`: an instance waiting for that interface tries again, and
    /// one (or a tracked interface) still on an older index learns that the interface was replaced
    /// (a deletion the monitor did not report).
    fn on_link_named(&mut self, now: Instant, index: u32, name: &str) {
        if name.is_empty() {
            return;
        }
        let replaced: Vec<u32> = self
            .instances
            .iter()
            .filter(|r| r.cfg.interface == name && r.link.index != index && r.link.index != NO_LINK)
            .map(|r| r.link.index)
            .collect();
        for old in replaced {
            self.detach_link(now, old);
        }
        let waiting: Vec<usize> = (0..self.instances.len())
            .filter(|&i| {
                let rt = &self.instances[i];
                rt.cfg.interface == name && rt.detached.is_some() && !rt.retiring
            })
            .collect();
        for i in waiting {
            self.try_attach(now, i);
        }
        for rt in &mut self.instances {
            for t in rt
                .tracked
                .iter_mut()
                .filter(|t| t.name == name && t.index != index)
            {
                info!(instance = %rt.cfg.name, "tracked interface {name} is back (index {index})");
                t.index = index;
            }
        }
    }

    pub(super) fn on_check(&mut self, now: Instant, report: CheckReport) {
        let Some(rt) = self.instances.iter_mut().find(|r| r.id == report.instance) else {
            return;
        };
        let Some(state) = rt.checks.get_mut(report.check) else {
            return;
        };
        let first = !state.known;
        state.apply(&report);
        let name = state.name.clone();
        if report.changed {
            if report.healthy {
                info!(instance = %rt.cfg.name, check = %name, "check is healthy ({} ms)", report.latency.as_millis());
            } else {
                warn!(instance = %rt.cfg.name, check = %name, "check is failing: {}", report.error.as_deref().unwrap_or("failed"));
            }
        }
        // A first result also lifts the "waiting for the first result" inhibit.
        if report.changed || first {
            rt.reevaluate(now);
        }
    }

    /// A track file's number changed (or was read for the first time since its directory is watched).
    pub(super) fn on_track_file(&mut self, now: Instant, report: TrackFileReport) {
        let Some(rt) = self.instances.iter_mut().find(|r| r.id == report.instance) else {
            return;
        };
        let Some(state) = rt.track_files.get_mut(report.file) else {
            return;
        };
        if state.apply(&report.reading) {
            info!(instance = %rt.cfg.name, track_file = %state.name, "{}", state.describe());
        }
        if let Some(note) = &state.note {
            warn!(instance = %rt.cfg.name, track_file = %state.name, "track file {}: {note}", state.path.display());
        }
        rt.reevaluate(now);
    }

    pub(super) fn on_witness(&mut self, now: Instant, report: WitnessReport) {
        let Some(rt) = self.instances.iter_mut().find(|r| r.id == report.instance) else {
            return;
        };
        if report.reachable {
            info!(instance = %rt.cfg.name, "witness reachable: {}", report.detail);
            rt.witness_inhibit = None;
        } else {
            warn!(instance = %rt.cfg.name, "witness unreachable, not claiming: {}", report.detail);
            rt.witness_inhibit = Some(report.detail);
        }
        rt.reevaluate_inhibit(now);
    }

    pub(super) fn on_sighting(&mut self, now: Instant, s: Sighting) {
        for rt in self
            .instances
            .iter_mut()
            .filter(|r| r.link.index == s.ifindex)
        {
            if rt.clashes.learn_mac(s.addr, s.holder) {
                warn!(instance = %rt.cfg.name, "the speaker on our VRID for other addresses, {}, is {} (its MAC)", s.addr, control::format_mac(&s.holder));
            }
        }
        for rt in self.instances.iter_mut() {
            if rt.link.index != s.ifindex
                || rt.detached.is_some()
                || !rt.cfg.addresses.iter().any(|v| v.addr == s.addr)
            {
                continue;
            }
            let mac = s.holder;
            rt.heard_since_probe = true;
            if rt.probe_answered(s.addr, mac) {
                continue;
            }
            // A backup hearing the master announce is normal; so is the successor announcing during a handoff.
            if !rt.hold.held() || rt.core.state() != State::Master || rt.core.handoff().is_some() {
                if rt.conflicts.yielded.is_some() {
                    rt.conflicts.sighting(now, s.addr, mac, rt.link.mac);
                }
                continue;
            }
            match rt.conflicts.sighting(now, s.addr, mac, rt.link.mac) {
                Verdict::Wait => {}
                Verdict::Reannounce { first_report } => {
                    if first_report {
                        let text = format!(
                            "{} is also answered by {} while we are master; re-announcing",
                            s.addr,
                            control::format_mac(&mac)
                        );
                        warn!(instance = %rt.cfg.name, "conflict: {text}");
                        rt.events.publish(EventRecord::new(
                            EventKind::Conflict,
                            Some(&rt.cfg.name),
                            text,
                        ));
                    }
                    rt.announce(rt.cfg.addresses.iter().map(|v| v.addr).collect());
                }
                Verdict::Yield(reason) => {
                    warn!(instance = %rt.cfg.name, "conflict: {reason}");
                    rt.events.publish(EventRecord::new(
                        EventKind::Conflict,
                        Some(&rt.cfg.name),
                        reason.clone(),
                    ));
                    rt.reevaluate(now);
                }
            }
        }
    }
}
