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
    /// 2 or 3: the version spoken now.
    pub version: u8,
    /// Why the version spoken is not the configured one (an IPv4 instance at the default version 3
    /// that follows a VRRPv2 router it heard); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_why: Option<String>,
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
    /// VRID clashes: speakers on our VRID whose adverts do not list our addresses (another virtual
    /// router), heard within the last minute. Their adverts are ignored.
    #[serde(default)]
    pub clashes: Vec<ClashStatus>,
    pub checks: Vec<CheckStatus>,
    /// The `[[instance.track_file]]`s, their numbers and what each does to the priority (absent without
    /// any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_files: Vec<TrackFileStatus>,
    /// How adverts are authenticated (`[instance.auth]`: mode, signing key, key ids, anti-replay;
    /// never a key); absent without authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// The last transitions, oldest first, newest last; at most [`HISTORY_MAX`].
    pub history: Vec<HistoryEntry>,
    /// `election = "etcd"` only: lease, owner, candidates ([docs/etcd.md](../../../../docs/etcd.md)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdStatus>,
}

/// The etcd side of an instance's status (absent for VRRP instances).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EtcdStatus {
    /// The member requests go to now ("http://192.0.2.11:2379").
    pub endpoint: String,
    /// Our lease (hex, as etcdctl shows it); `None` while we have none.
    pub lease: Option<String>,
    /// The TTL etcd granted, in seconds.
    pub lease_ttl_s: u64,
    /// How long the lease surely lives in etcd, by our own count.
    pub lease_remaining_ms: Option<u64>,
    /// The owner key's value ("host 192.0.2.1"); `None`: nobody owns the VIPs.
    pub owner: Option<String>,
    /// Every candidacy in etcd, best first.
    pub candidates: Vec<EtcdCandidate>,
    /// Since when our renewals fail (unix seconds); `None` while etcd answers.
    pub unreachable_since: Option<f64>,
    /// When we last let go of the VIPs because the lease could not be renewed (unix seconds).
    pub released_at: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdCandidate {
    pub address: IpAddr,
    pub priority: u8,
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
    /// The addresses its last advert listed, in advert order.
    #[serde(default)]
    pub advertised: Vec<IpAddr>,
    pub last_heard_age_ms: u64,
}

/// A speaker on our VRID whose adverts do not list our addresses: another virtual router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClashStatus {
    /// Its advert source address.
    pub address: IpAddr,
    /// The addresses its last advert listed.
    pub addresses: Vec<IpAddr>,
    /// The priority in its last advert.
    pub priority: u8,
    /// Its adverts ignored since it was first heard (or heard again after a minute of silence).
    pub adverts: u64,
    /// Its MAC ("02:00:00:00:00:09"), once it has answered our ARP probe / NS for its address.
    #[serde(default)]
    pub mac: Option<String>,
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
    /// VRRP packets read on this instance's interface and address family that no instance took, by
    /// reason ("truncated": under 8 bytes; "vrid": a VRID no instance there runs). Shared: every
    /// instance on the same interface and family shows the same numbers.
    #[serde(default)]
    pub interface_drops: BTreeMap<String, u64>,
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

/// One track file: its number in force and what it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackFileStatus {
    pub name: String,
    pub path: String,
    pub weight: i32,
    /// The number in force (0 for a missing file).
    pub value: i64,
    /// What it adds to the priority (`None` when it puts the instance in FAULT).
    pub offset: Option<i64>,
    /// It puts the instance in FAULT (weight 0 and a non-zero number, or a product of -254).
    pub fault: bool,
    /// "missing: counts as 0", "... ignored, 5 kept".
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Unix seconds.
    pub at: f64,
    pub from: String,
    pub to: String,
    pub reason: String,
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

pub(crate) fn age_ms(now: Instant, then: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(then).as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One `[[group]]` as `floatip status` shows it: its members' states, and whether they disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub name: String,
    pub members: Vec<GroupMemberStatus>,
    /// Some members are MASTER and some are not: the group's VIPs are on more than one host (or
    /// moving right now).
    pub split: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMemberStatus {
    pub name: String,
    /// As in the instance's `state`.
    pub state: String,
}

impl GroupStatus {
    /// The group named `name` over its members' states (in the group's order).
    pub fn new(name: &str, members: Vec<GroupMemberStatus>) -> GroupStatus {
        let masters = members.iter().filter(|m| m.state == "MASTER").count();
        GroupStatus {
            name: name.to_string(),
            split: masters > 0 && masters < members.len(),
            members,
        }
    }
}

/// The document `floatip status --json` prints and the HTTP listener serves at `/status.json`:
/// `{"version":N,"instances":[...]}`, with `"groups":[...]` when there are groups.
pub fn status_document(instances: &[InstanceStatus], groups: &[GroupStatus]) -> serde_json::Value {
    let mut out = serde_json::json!({
        "version": super::PROTOCOL_VERSION,
        "instances": instances,
    });
    if !groups.is_empty() {
        out["groups"] = serde_json::json!(groups);
    }
    out
}

/// The answer to `Status { instance }` without groups: all instances, the named one, or an error.
pub fn select_instances(all: Vec<InstanceStatus>, instance: Option<&str>) -> Response {
    select_status(all, Vec::new(), instance)
}

/// The answer to `Status { instance }`: all instances and groups, the named instance, the named group
/// with its members, or an error listing the names.
pub fn select_status(
    all: Vec<InstanceStatus>,
    groups: Vec<GroupStatus>,
    instance: Option<&str>,
) -> Response {
    let Some(name) = instance else {
        return Response::Status {
            instances: all,
            groups,
        };
    };
    if all.iter().any(|i| i.name == name) {
        return Response::Status {
            instances: all.into_iter().filter(|i| i.name == name).collect(),
            groups: Vec::new(),
        };
    }
    if let Some(g) = groups.into_iter().find(|g| g.name == name) {
        return Response::Status {
            instances: all
                .into_iter()
                .filter(|i| g.members.iter().any(|m| m.name == i.name))
                .collect(),
            groups: vec![g],
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
