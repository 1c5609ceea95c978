//! Reload: re-read the config; unchanged instances keep running, changes that leave the election
//! alone apply in place, anything else steps down make-before-break and starts afresh.

use std::time::{Duration, Instant};

use anyhow::Result;
use tracing::{error, info, warn};
use vrrp::Event;

use super::runtime::Tracked;
use super::{Daemon, WITNESS_EVERY};
use crate::config::{self, InstanceConfig};
use crate::health::track_file::{self, TrackFileState};
use crate::health::witness;
use crate::health::{self, CheckState};

impl Daemon {
    /// Re-read the config. Unchanged instances keep their state; a changed priority applies in place;
    /// any other change, like a removed instance, steps down make-before-break and starts afresh.
    pub(super) fn reload(&mut self, now: Instant) -> Result<String> {
        crate::service::reloading();
        let result = self.apply_config(now);
        crate::service::ready(&self.status_line());
        result
    }

    /// The systemd STATUS= line: each instance's state.
    pub(super) fn status_line(&self) -> String {
        crate::service::status_line(
            self.instances
                .iter()
                .filter(|r| !r.retiring)
                .map(|r| (r.cfg.name.as_str(), r.core.state().as_str())),
        )
    }

    pub(super) fn apply_config(&mut self, now: Instant) -> Result<String> {
        let mut new = config::load(&self.config_path)
            .map_err(|e| anyhow::anyhow!("{e}\nthe running configuration stays in force"))?;
        // etcd elections: settings of running members change in place (sent to their tasks once
        // the VRRP side has been prepared); anything else waits for a restart, and the answer says so.
        let etcd_new = crate::election::take_etcd_instances(&mut new);
        let etcd_plan =
            crate::election::etcd::reload::plan(&self.etcd, etcd_new, new.etcd.as_ref());
        let live = |d: &Daemon, name: &str| {
            d.instances
                .iter()
                .position(|r| r.cfg.name == name && !r.retiring)
        };
        // Everything that can fail happens first: if an interface is missing, nothing has changed yet.
        let mut fresh = Vec::new();
        let mut in_place = Vec::new();
        for inst in &new.instances {
            match live(self, &inst.name) {
                Some(i) if self.instances[i].cfg == *inst => {}
                Some(i) if self.instances[i].cfg.same_election(inst) => {
                    let tracked = self.resolve_tracked(inst).map_err(|e| {
                        anyhow::anyhow!("{e:#}\nthe running configuration stays in force")
                    })?;
                    in_place.push((i, inst.clone(), tracked));
                }
                _ => {
                    // No waiting here: the loop serves the running instances meanwhile.
                    let rt = self.prepare(inst, Duration::ZERO).map_err(|e| {
                        anyhow::anyhow!("{e:#}\nthe running configuration stays in force")
                    })?;
                    fresh.push(rt);
                }
            }
        }
        let kept = new
            .instances
            .iter()
            .filter(|inst| live(self, &inst.name).is_some_and(|i| self.instances[i].cfg == **inst))
            .count();
        self.groups.set(new.groups.clone());
        self.events.set_groups(
            new.groups
                .iter()
                .chain(&self.etcd.groups)
                .map(|g| (g.name.as_str(), g.instances.as_slice())),
        );
        let mut changed = Vec::new();
        for (i, inst, tracked) in in_place {
            changed.push(self.update_in_place(i, &inst, tracked, now));
        }
        let mut retired = Vec::new();
        for rt in self.instances.iter_mut().filter(|r| !r.retiring) {
            let stays = new
                .instances
                .iter()
                .any(|i| i.name == rt.cfg.name && (*i == rt.cfg || rt.cfg.same_election(i)));
            if !stays {
                rt.retiring = true;
                rt.core.handle_event(now, Event::Shutdown);
                retired.push(rt.cfg.name.clone());
            }
        }
        // Let retiring masters send their priority-0 adverts before the new instances start.
        self.drain_actions(now);
        let started: Vec<String> = fresh.iter().map(|r| r.cfg.name.clone()).collect();
        // A replacement starts once the instance it replaces has handed its VIPs over.
        self.pending_starts.extend(fresh);
        self.start_pending(now);
        let etcd_note = self.reload_etcd(etcd_plan);
        let msg = format!(
            "reloaded {}: {kept} unchanged; changed in place: [{}]; started: [{}]; stepping down: [{}]{etcd_note}",
            self.config_path.display(),
            changed.join(", "),
            started.join(", "),
            retired.join(", ")
        );
        info!("{msg}");
        Ok(msg)
    }

    /// Hands the etcd elections their new settings; what the answer says of them.
    fn reload_etcd(&mut self, plan: crate::election::etcd::reload::Plan) -> String {
        let mut changed = Vec::new();
        for (unit, members, what) in plan.updates {
            let Some(task) = self.etcd.calls.get(&unit) else {
                continue;
            };
            let call = crate::election::etcd::EtcdCall::Reload {
                members: members.clone(),
            };
            if task.try_send(call).is_err() {
                warn!(instance = %unit, "the etcd election is busy or stopped; its reload is not applied");
                continue;
            }
            if let Some(u) = self.etcd.units.iter_mut().find(|(n, _)| *n == unit) {
                u.1 = members;
            }
            changed.push(what);
        }
        let mut note = String::new();
        if !changed.is_empty() {
            note.push_str(&format!(
                "; etcd, changed in place: [{}]",
                changed.join(", ")
            ));
        }
        if !plan.need_restart.is_empty() {
            let restart = format!(
                "etcd changes that need a restart of the daemon (the running ones stay as they are): [{}]",
                plan.need_restart.join(", ")
            );
            warn!("{restart}");
            note.push_str(&format!(";\n  {restart}"));
        }
        note
    }

    /// Apply a change that leaves the election alone (priority, announcements, lifetime, checks,
    /// hooks, witness, tracked interfaces) to a running instance: no failover, only the affected
    /// tasks restart.
    pub(super) fn update_in_place(
        &mut self,
        i: usize,
        new: &InstanceConfig,
        tracked: Vec<Tracked>,
        now: Instant,
    ) -> String {
        let chans = self.chans.clone();
        let rt = &mut self.instances[i];
        let mut what = Vec::new();
        if rt.cfg.priority != new.priority {
            what.push(format!("priority {}", new.priority));
        }
        if rt.cfg.checks != new.checks {
            rt.checks = CheckState::for_checks(&new.checks);
            rt.check_tasks = health::spawn(rt.id, &new.name, &new.checks, chans.checks.clone());
            what.push("checks".to_string());
        }
        if rt.cfg.witness != new.witness {
            rt.witness_task = witness::spawn(
                rt.id,
                new.witness.clone(),
                WITNESS_EVERY,
                chans.witness.clone(),
            );
            rt.witness_inhibit =
                (!new.witness.is_empty()).then(|| "witness: first probe pending".to_string());
            what.push("witness".to_string());
        }
        if rt.cfg.track_files != new.track_files {
            rt.track_files = TrackFileState::for_files(&new.track_files);
            rt.track_task = track_file::spawn(
                rt.id,
                &new.name,
                &new.track_files,
                chans.track_files.clone(),
            );
            what.push("track files".to_string());
        }
        if rt.cfg.notify != new.notify {
            rt.hooks = crate::hooks::spawn_configured(&new.name, &new.notify);
            what.push("hooks".to_string());
        }
        if rt.cfg.track_interfaces != new.track_interfaces {
            what.push("tracked interfaces".to_string());
        }
        if rt.cfg.announce != new.announce {
            what.push("announcements".to_string());
            rt.hold.reschedule_announce(now, &new.announce);
        }
        if rt.cfg.address_lifetime != new.address_lifetime {
            what.push("address lifetime".to_string());
            rt.hold.refresh_now(now);
        }
        if rt.cfg.auth != new.auth {
            // New keys or modes; the sequences stay, so peers do not take our next advert for a replay.
            rt.auth.reconfigure(new.auth.clone());
            what.push("authentication".to_string());
        }
        rt.tracked = tracked;
        rt.cfg = new.clone();
        rt.reevaluate(now);
        format!("{} ({})", new.name, what.join(", "))
    }

    /// Start instances from a reload once no retiring instance holds any of their VIPs.
    pub(super) fn start_pending(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending_starts.len() {
            let rt = &self.pending_starts[i];
            let blocked = self.instances.iter().any(|old| {
                old.retiring
                    && old
                        .cfg
                        .addresses
                        .iter()
                        .any(|a| rt.cfg.addresses.iter().any(|b| a.addr == b.addr))
            });
            if blocked {
                i += 1;
                continue;
            }
            let rt = self.pending_starts.swap_remove(i);
            let name = rt.cfg.name.clone();
            if let Err(err) = self.start(rt, now) {
                error!(instance = %name, "cannot start after reload: {err:#}");
            }
        }
    }
}
