//! Claiming only what nobody else answers for. Before a claim after silence (the core's
//! [`vrrp::Action::Probe`]: the master that went quiet may be frozen or killed with the VIP still on
//! its interface) and before putting back a VIP that vanished while we are master (removed by hand, or
//! expired while this daemon was stopped, when another host may have claimed it meanwhile), the
//! instance asks the LAN who answers for the VIP (ARP probe / neighbour solicitation) in rounds of
//! [`PROBE_ROUND`]. Answers arrive as sightings through the ARP/ND watch; a round without one lets the
//! claim or the restore go ahead. While anyone answers, it waits, so two hosts never hold the VIP.
//! A preemption goes the same way: the new master advertises at once, the old one lets go when it
//! hears it, and only then is the VIP added.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use vrrp::{Event, State};

use super::Daemon;
use crate::config::Vip;

/// How long a round waits for an answer. On a LAN a host's kernel answers an ARP probe in well under
/// a millisecond; this is what a claim after silence costs on top of master-down when nobody answers.
pub(super) const PROBE_ROUND: Duration = Duration::from_millis(4);

/// How often a restore that waits for the host's own address looks again (then probes afresh).
const PRIMARY_RECHECK: Duration = Duration::from_millis(100);

/// What a quiet round leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AfterProbe {
    /// Tell the core ([`Event::ProbeQuiet`]); it claims.
    Claim,
    /// Put these VIPs back (we are master and hold them).
    Restore(Vec<Vip>),
}

/// A probe in progress.
#[derive(Debug)]
pub(super) struct ClaimProbe {
    pub(super) then: AfterProbe,
    /// When the current round's answers are in.
    pub(super) round_ends: Instant,
    /// Someone answered in this round.
    answered: bool,
    /// Who answered last (said once in the log, shown by `status`).
    holder: Option<(IpAddr, [u8; 6])>,
    /// A restore waits for the host's own address (said once); this round sent no probe, so its
    /// end starts a fresh one rather than counting as quiet.
    waiting_for_primary: bool,
    unprobed_round: bool,
    /// A claim that had to wait for another holder has waited out its skew after the first quiet
    /// round (see [`Daemon::probe_rounds`]).
    settled: bool,
}

impl ClaimProbe {
    /// Starts a probe in `slot`, or adds the VIPs of a restore to the restore already running.
    pub(super) fn start(slot: &mut Option<ClaimProbe>, now: Instant, then: AfterProbe) {
        match (slot, then) {
            (
                Some(ClaimProbe {
                    then: AfterProbe::Restore(vips),
                    ..
                }),
                AfterProbe::Restore(more),
            ) => {
                for v in more {
                    if !vips.contains(&v) {
                        vips.push(v);
                    }
                }
            }
            (slot, then) => {
                *slot = Some(ClaimProbe {
                    then,
                    round_ends: now + PROBE_ROUND,
                    answered: false,
                    holder: None,
                    waiting_for_primary: false,
                    unprobed_round: false,
                    settled: false,
                });
            }
        }
    }

    /// The VIPs this probe asks about (a claim: all of the instance's, `all`).
    pub(super) fn vips(&self, all: &[Vip]) -> Vec<IpAddr> {
        match &self.then {
            AfterProbe::Claim => all.iter().map(|v| v.addr).collect(),
            AfterProbe::Restore(vips) => vips.iter().map(|v| v.addr).collect(),
        }
    }

    /// `holder` answers for `addr` in this round. True the first time anyone answers this probe.
    pub(super) fn answered_by(&mut self, addr: IpAddr, holder: [u8; 6]) -> bool {
        self.answered = true;
        self.holder.replace((addr, holder)).is_none()
    }

    /// Who answered last.
    pub(super) fn holder(&self) -> Option<(IpAddr, [u8; 6])> {
        self.holder
    }

    /// A probe before a claim (not a restore).
    pub(super) fn is_claim(&self) -> bool {
        self.then == AfterProbe::Claim
    }

    /// Now the first round's end probes again rather than counting as quiet.
    pub(super) fn probe_again(&mut self) {
        self.unprobed_round = true;
    }
}

impl Daemon {
    /// Rounds that ended: another one while anyone answered, else the claim or restore goes ahead.
    pub(super) fn probe_rounds(&mut self, now: Instant) {
        // Answers the watch's task has not handed over yet count for the round that ends now: a
        // round lasts 4 ms, and that task runs late on a loaded host (a restore was seen to put the
        // VIP back next to a host that still answered, whose answer was still queued).
        let mut ended: Vec<u32> = self
            .instances
            .iter()
            .filter(|r| r.probe.as_ref().is_some_and(|p| p.round_ends <= now))
            .map(|r| r.link.index)
            .collect();
        ended.dedup();
        for index in ended {
            for s in self.kernel.queued_sightings(index) {
                self.on_sighting(now, s);
            }
        }
        for rt in &mut self.instances {
            let Some(p) = rt.probe.as_mut() else {
                continue;
            };
            if p.round_ends > now {
                continue;
            }
            if std::mem::take(&mut p.answered) || std::mem::take(&mut p.unprobed_round) {
                p.round_ends = now + PROBE_ROUND;
                rt.send_probes();
                continue;
            }
            // Every backup that waited for the same stale VIP sees it go in the same round: the
            // first quiet round starts a wait of this instance's skew (shorter for a higher
            // priority, as for master-down), so the best one claims and the others hear its advert
            // (which ends their wait) or its announcement (which answers their last round).
            if p.then == AfterProbe::Claim && p.holder.is_some() && !p.settled {
                p.settled = true;
                p.round_ends = now + rt.core.skew_time();
                p.unprobed_round = true;
                continue;
            }
            // Put back before the host's own address, a VIP would become the interface's primary
            // address (the source of everything the host sends): wait for it, then probe again.
            if matches!(p.then, AfterProbe::Restore(_)) {
                let index = rt.link.index;
                let primary = rt.primary;
                let has_primary = self
                    .kernel
                    .addresses(index)
                    .map_or(true, |a| a.iter().any(|(x, _)| *x == primary));
                if !has_primary {
                    if !std::mem::replace(&mut p.waiting_for_primary, true) {
                        info!(instance = %rt.cfg.name, "waiting for the host's own address {primary} on {} before putting the VIP back", rt.cfg.interface);
                    }
                    p.round_ends = now + PRIMARY_RECHECK;
                    p.unprobed_round = true;
                    continue;
                }
            }
            let Some(done) = rt.probe.take() else {
                continue;
            };
            match done.then {
                AfterProbe::Claim => {
                    if done.holder.is_some() {
                        info!(instance = %rt.cfg.name, "nobody answers for {} any more", rt.vips().join(", "));
                    }
                    rt.probe_cleared = true;
                    rt.core.handle_event(now, Event::ProbeQuiet);
                }
                AfterProbe::Restore(vips) => {
                    if !rt.hold.held() || rt.core.state() != State::Master {
                        continue;
                    }
                    for vip in &vips {
                        info!(instance = %rt.cfg.name, vip = %vip, "nobody else answers for it: putting our VIP back and announcing it");
                        rt.counters.vip_restored += 1;
                    }
                    let serving = rt.core.handoff().is_none();
                    rt.put_up_vips(&*self.kernel, &vips, now, serving);
                    rt.announce(vips.iter().map(|v| v.addr).collect());
                }
            }
        }
    }

    /// The loop did not run for longer than it promised (the daemon was stopped, or the machine
    /// paused): VIPs we hold may have expired, or been taken off by the guard, and another host may
    /// have claimed them meanwhile. Those missing from the kernel are put back only after a probe.
    pub(super) fn after_stall(&mut self, now: Instant, stalled: Duration) {
        for rt in self.instances.iter_mut().filter(|r| r.hold.held()) {
            let present = match self.kernel.addresses(rt.vip_index()) {
                Ok(a) => a,
                Err(err) => {
                    warn!(instance = %rt.cfg.name, "cannot list the addresses after a stall: {err:#}");
                    continue;
                }
            };
            let missing: Vec<Vip> = rt
                .cfg
                .addresses
                .iter()
                .filter(|v| !present.iter().any(|(a, _)| *a == v.addr))
                .cloned()
                .collect();
            if missing.is_empty() {
                continue;
            }
            warn!(instance = %rt.cfg.name, "this daemon did not run for {} (stopped? a paused VM?) and {} went away meanwhile; another host may hold it now, so it goes back only once nobody answers for it",
                crate::config::format_duration(stalled),
                missing.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "));
            rt.start_probe(now, AfterProbe::Restore(missing));
            // The ARP/ND watch was stopped too and may still be reading what queued up meanwhile,
            // so the first round's end probes again rather than counting as quiet (a lab run put
            // the VIP back 1 ms after waking, next to the host that held it by then).
            if let Some(p) = rt.probe.as_mut() {
                p.probe_again();
            }
        }
    }
}
