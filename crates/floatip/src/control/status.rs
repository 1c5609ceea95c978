//! The status model: everything `floatip status` (and `--json`, the metrics endpoint, `doctor`)
//! knows about one instance. Stable JSON, documented in `docs/status-json.md`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::protocol::Response;

/// Everything `floatip status` shows about one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// 2 or 3.
    pub version: u8,
    /// "MASTER", "BACKUP", "FAULT" or "INIT".
    pub state: String,
    /// When the last transition happened (unix seconds); `None` before the first one.
    pub since: Option<f64>,
    /// Why the last transition happened; `None` before the first one.
    pub reason: Option<String>,
    pub priority: PriorityStatus,
    pub vips: Vec<VipStatus>,
    /// The master as seen on the wire, or ourselves (`is_self`) while we are master.
    pub master: Option<MasterStatus>,
    /// Every VRRP speaker heard on this VRID (ourselves excluded), by address.
    pub speakers: Vec<SpeakerStatus>,
    pub counters: CountersStatus,
    /// "takeover" or "release"; `None` = automatic.
    #[serde(rename = "override")]
    pub override_mode: Option<OverrideMode>,
    /// Why this node does not claim the VIP now (witness unreachable, ...); `None` = free to claim.
    pub claim_inhibit: Option<String>,
    /// Other hosts seen answering for our VIPs.
    pub conflicts: Vec<ConflictStatus>,
    pub checks: Vec<CheckStatus>,
    /// The last transitions, oldest first, newest last; at most [`HISTORY_MAX`].
    pub history: Vec<HistoryEntry>,
}

/// How many transitions [`InstanceStatus::history`] carries.
pub const HISTORY_MAX: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorityStatus {
    pub configured: u8,
    /// The priority we advertise now.
    pub effective: u8,
    pub why_different: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipStatus {
    /// "192.0.2.97/24"
    pub address: String,
    /// Whether the kernel has the address on the interface right now.
    pub present_in_kernel: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterStatus {
    pub address: IpAddr,
    /// True when the master is this node.
    #[serde(rename = "self")]
    pub is_self: bool,
    pub priority: u8,
    pub interval_ms: u64,
    /// Age of the last advert heard from it; `None` when the master is this node.
    pub last_advert_age_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeakerStatus {
    pub address: IpAddr,
    pub priority: u8,
    pub interval_ms: u64,
    /// How many addresses its last advert listed.
    pub addresses: usize,
    pub last_heard_age_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersStatus {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub send_errors: u64,
    /// Received adverts dropped, by reason label (e.g. "ttl", "vrid", "checksum").
    pub drops: BTreeMap<String, u64>,
    /// How often our VIP vanished while we were master and was put back.
    pub vip_restored: u64,
    /// State changes since the daemon started, keyed "FROM->TO" (e.g. "BACKUP->MASTER").
    #[serde(default)]
    pub transitions: BTreeMap<String, u64>,
    /// Conflicts confirmed since the daemon started (another MAC answering for our VIP).
    #[serde(default)]
    pub conflicts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideMode {
    Takeover,
    Release,
}

impl OverrideMode {
    /// `None` for `Auto` (no override).
    pub fn from_vrrp(o: vrrp::Override) -> Option<OverrideMode> {
        match o {
            vrrp::Override::Takeover => Some(OverrideMode::Takeover),
            vrrp::Override::Release => Some(OverrideMode::Release),
            vrrp::Override::Auto => None,
        }
    }

    pub fn to_vrrp(self) -> vrrp::Override {
        match self {
            OverrideMode::Takeover => vrrp::Override::Takeover,
            OverrideMode::Release => vrrp::Override::Release,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictStatus {
    /// The VIP someone else answered for.
    pub address: IpAddr,
    /// "02:00:00:00:00:02"
    pub mac: String,
    pub last_seen_age_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckStatus {
    pub name: String,
    pub healthy: bool,
    /// Duration of the last run.
    pub latency_ms: Option<f64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Unix seconds.
    pub at: f64,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// The state as status shows it: "MASTER", "BACKUP", "FAULT", "INIT".
pub fn state_name(state: vrrp::State) -> &'static str {
    match state {
        vrrp::State::Initialize => "INIT",
        vrrp::State::Backup => "BACKUP",
        vrrp::State::Master => "MASTER",
        vrrp::State::Fault => "FAULT",
    }
}

/// A MAC as "02:00:00:00:00:02".
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub(crate) fn unix_secs(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

fn age_ms(now: Instant, then: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(then).as_millis()).unwrap_or(u64::MAX)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One speaker as the daemon tracks it (`daemon::Speaker` plus its address).
#[derive(Debug, Clone)]
pub struct SpeakerFacts {
    pub address: IpAddr,
    pub priority: u8,
    pub interval_cs: u16,
    pub addresses: usize,
    pub last_heard: Instant,
}

/// One transition as the daemon records it (`daemon::Record`).
#[derive(Debug, Clone)]
pub struct RecordFacts {
    pub at: SystemTime,
    pub from: vrrp::State,
    pub to: vrrp::State,
    pub reason: String,
}

/// What the daemon knows about one instance, as plain data: the input of [`status_from_facts`].
///
/// The daemon fills it from its `Runtime` (config, `vrrp::Instance` getters, speakers, history,
/// counters); keeping it plain lets the status logic be tested without a kernel or a running core.
/// [`instance_status`] builds it from the daemon's `Runtime`.
#[derive(Debug, Clone)]
pub struct InstanceFacts {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub version: vrrp::Version,
    pub configured_priority: u8,
    /// `core.effective_priority()`
    pub effective_priority: u8,
    /// Why the effective priority differs, when the daemon knows better than the generic text (for
    /// example "check smb failing: weight -60").
    pub priority_note: Option<String>,
    /// `core.state()`
    pub state: vrrp::State,
    /// `core.override_mode()`
    pub override_mode: Option<vrrp::Override>,
    /// The configured VIPs with their prefix lengths.
    pub vips: Vec<(IpAddr, u8)>,
    /// Our advert source address.
    pub primary: IpAddr,
    /// `core.current_interval()`
    pub interval: Duration,
    /// `core.master_seen().cloned()`
    pub master_seen: Option<vrrp::machine::MasterSeen>,
    pub speakers: Vec<SpeakerFacts>,
    /// Oldest first.
    pub history: Vec<RecordFacts>,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub send_errors: u64,
    pub drops: BTreeMap<String, u64>,
    pub vip_restored: u64,
    /// Transitions by (from, to) since start.
    pub transitions: BTreeMap<String, u64>,
    pub conflicts_total: u64,
    pub claim_inhibit: Option<String>,
    pub conflicts: Vec<ConflictStatus>,
    pub checks: Vec<CheckStatus>,
}

/// Builds the status of one instance from plain facts. `present` is every address the kernel has on the
/// instance's interface now; `now` is the clock the daemon's `Instant`s come from.
pub fn status_from_facts(
    facts: &InstanceFacts,
    present: &[IpAddr],
    now: Instant,
) -> InstanceStatus {
    let last = facts.history.last();
    let version = match facts.version {
        vrrp::Version::V2 => 2,
        vrrp::Version::V3 => 3,
    };
    let override_mode = facts.override_mode.and_then(OverrideMode::from_vrrp);
    let why_different = if override_mode == Some(OverrideMode::Takeover) {
        Some(format!(
            "takeover override: advertising {} until `floatip auto {}`",
            facts.effective_priority, facts.name
        ))
    } else if facts.effective_priority == facts.configured_priority {
        None
    } else if facts.effective_priority == 0 {
        Some("stepping down: advertising 0 so a backup takes over at once".to_string())
    } else {
        Some(
            facts
                .priority_note
                .clone()
                .unwrap_or_else(|| "changed by health-check weights".to_string()),
        )
    };
    let master = if facts.state == vrrp::State::Master {
        Some(MasterStatus {
            address: facts.primary,
            is_self: true,
            priority: facts.effective_priority,
            interval_ms: ms(facts.interval),
            last_advert_age_ms: None,
        })
    } else {
        facts.master_seen.as_ref().map(|m| MasterStatus {
            address: m.address,
            is_self: false,
            priority: m.priority,
            interval_ms: ms(m.interval),
            last_advert_age_ms: Some(age_ms(now, m.last_heard)),
        })
    };
    let mut speakers: Vec<SpeakerStatus> = facts
        .speakers
        .iter()
        .filter(|s| s.address != facts.primary)
        .map(|s| SpeakerStatus {
            address: s.address,
            priority: s.priority,
            interval_ms: u64::from(s.interval_cs) * 10,
            addresses: s.addresses,
            last_heard_age_ms: age_ms(now, s.last_heard),
        })
        .collect();
    speakers.sort_by_key(|s| s.address);
    let skip = facts.history.len().saturating_sub(HISTORY_MAX);
    InstanceStatus {
        name: facts.name.clone(),
        interface: facts.interface.clone(),
        vrid: facts.vrid,
        version,
        state: state_name(facts.state).to_string(),
        since: last.map(|r| unix_secs(r.at)),
        reason: last.map(|r| r.reason.clone()),
        priority: PriorityStatus {
            configured: facts.configured_priority,
            effective: facts.effective_priority,
            why_different,
        },
        vips: facts
            .vips
            .iter()
            .map(|(addr, len)| VipStatus {
                address: format!("{addr}/{len}"),
                present_in_kernel: present.contains(addr),
            })
            .collect(),
        master,
        speakers,
        counters: CountersStatus {
            adverts_sent: facts.adverts_sent,
            adverts_received: facts.adverts_received,
            send_errors: facts.send_errors,
            drops: facts.drops.clone(),
            vip_restored: facts.vip_restored,
            transitions: facts.transitions.clone(),
            conflicts: facts.conflicts_total,
        },
        override_mode,
        claim_inhibit: facts.claim_inhibit.clone(),
        conflicts: facts.conflicts.clone(),
        checks: facts.checks.clone(),
        history: facts.history[skip..]
            .iter()
            .map(|r| HistoryEntry {
                at: unix_secs(r.at),
                from: state_name(r.from).to_string(),
                to: state_name(r.to).to_string(),
                reason: r.reason.clone(),
            })
            .collect(),
    }
}

/// The answer to `Status { instance }`: all instances, the named one, or an error listing the names.
pub fn select_instances(all: Vec<InstanceStatus>, instance: Option<&str>) -> Response {
    let Some(name) = instance else {
        return Response::Status { instances: all };
    };
    if all.iter().any(|i| i.name == name) {
        return Response::Status {
            instances: all.into_iter().filter(|i| i.name == name).collect(),
        };
    }
    Response::Error {
        message: unknown_instance(name, all.iter().map(|i| i.name.as_str())),
    }
}

/// "no instance named X (configured: files, web)": for every command that names an instance.
pub fn unknown_instance<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    let known: Vec<&str> = known.collect();
    if known.is_empty() {
        format!("no instance named {name}: this daemon manages no instances")
    } else {
        format!(
            "no instance named {name} (configured: {}; see `floatip status`)",
            known.join(", ")
        )
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_capped_newest_last() {
        let now = Instant::now();
        let rec = |i: usize| RecordFacts {
            at: UNIX_EPOCH + Duration::from_secs(i as u64),
            from: vrrp::State::Backup,
            to: vrrp::State::Master,
            reason: format!("r{i}"),
        };
        let facts = InstanceFacts {
            name: "files".into(),
            interface: "eth0".into(),
            vrid: 51,
            version: vrrp::Version::V3,
            configured_priority: 150,
            effective_priority: 150,
            priority_note: None,
            state: vrrp::State::Master,
            override_mode: None,
            vips: vec![("192.0.2.97".parse().unwrap(), 24)],
            primary: "192.0.2.1".parse().unwrap(),
            interval: Duration::from_secs(1),
            master_seen: None,
            speakers: vec![],
            history: (0..60).map(rec).collect(),
            adverts_sent: 0,
            adverts_received: 0,
            send_errors: 0,
            drops: BTreeMap::new(),
            vip_restored: 0,
            transitions: BTreeMap::new(),
            conflicts_total: 0,
            claim_inhibit: None,
            conflicts: vec![],
            checks: vec![],
        };
        let st = status_from_facts(&facts, &[], now);
        assert_eq!(st.history.len(), HISTORY_MAX);
        assert_eq!(st.history.last().unwrap().reason, "r59");
        assert_eq!(st.reason.as_deref(), Some("r59"));
        assert!(st.master.unwrap().is_self);
        assert!(!st.vips[0].present_in_kernel);
    }
}
