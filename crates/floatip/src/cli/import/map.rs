//! keepalived's statements to floatip's configuration: the top level (`global_defs`, `vrrp_script`
//! and `track_file` definitions, `vrrp_sync_group` as `[[group]]`, everything floatip does not do) and
//! the output file with its comments. One instance is [`super::instance`]'s job, what it tracks
//! [`super::track`]'s. Every statement not imported is a [`Note`] with its keepalived file:line.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::reader::{ImportError, Pos};
use super::tree::Node;

/// Something the import says about the input: a difference that changes nothing (`needs_person`
/// false) or something a person has to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub pos: Pos,
    pub text: String,
    pub needs_person: bool,
}

/// The floatip configuration text and what was said about the input.
#[derive(Debug)]
pub struct Imported {
    pub toml: String,
    pub notes: Vec<Note>,
    /// Why `toml` must not be written, when it must not: it does not pass `floatip check` (no
    /// instance floatip can run, or a fault of the import's own).
    pub unwritable: Option<String>,
}

impl Imported {
    /// The output behaves as the input, and passes `floatip check`.
    pub fn complete(&self) -> bool {
        self.unwritable.is_none() && !self.notes.iter().any(|n| n.needs_person)
    }
}

pub(super) type Out = String;

/// What the mapping of one file knows and has said so far.
pub(super) struct Ctx<'a> {
    pub notes: Vec<Note>,
    pub vrrp_version: u8,
    pub v3_checksum_as_v2: Option<Node>,
    /// Global `vrrp_garp_*` settings under the instance keyword (`garp_master_repeat`...).
    pub garp: HashMap<String, Node>,
    pub scripts: HashMap<String, Node>,
    pub track_files: HashMap<String, Node>,
    pub used_scripts: BTreeSet<String>,
    pub used_files: BTreeSet<String>,
    /// keepalived instance name -> floatip name.
    pub instance_names: HashMap<String, String>,
    /// keepalived instance name -> where it is defined (a second definition is ignored, as keepalived does).
    pub instance_pos: HashMap<String, Pos>,
    /// Comments for the statements keepalived ignores altogether.
    pub dropped: Vec<String>,
    /// keepalived instance name -> its sync group, and whether that group keeps tracking weights
    /// (`sync_group_tracking_weight`).
    pub sync_member: HashMap<String, (String, bool)>,
    /// While one instance is mapped: why keepalived ignores its tracking weights, if it does.
    pub weightless: Option<String>,
    taken: BTreeSet<String>,
    pub exists: &'a dyn Fn(&Path) -> bool,
}

impl Ctx<'_> {
    /// A floatip name for a keepalived one (lower case, `a-z 0-9 _ -`, at most 32), unique in the file.
    pub fn unique_name(&mut self, kname: &str, _pos: &Pos) -> String {
        let base = name_of(kname);
        let mut name = base.clone();
        let mut n = 2;
        while self.taken.contains(&name) {
            let suffix = format!("-{n}");
            name = format!("{}{suffix}", &base[..base.len().min(32 - suffix.len())]);
            n += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    fn note(&mut self, pos: &Pos, text: String, needs_person: bool) {
        self.notes.push(Note {
            pos: pos.clone(),
            text: flat(&text),
            needs_person,
        });
    }
}

/// keepalived's name in floatip's alphabet.
pub(super) fn name_of(kname: &str) -> String {
    let mut s: String = kname
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(32)
        .collect();
    if s.is_empty() {
        s.push_str("vrrp");
    }
    s
}

/// A check (or track file) name from `base`, not yet used by a `name = "..."` in `taken`.
pub(super) fn check_name(base: &str, taken: &[String]) -> String {
    let base = name_of(base);
    let used = |n: &str| {
        taken
            .iter()
            .any(|c| c.contains(&format!("\nname = {}\n", q(n))))
    };
    let mut name = base.clone();
    let mut i = 2;
    while used(&name) {
        let suffix = format!("-{i}");
        name = format!("{}{suffix}", &base[..base.len().min(32 - suffix.len())]);
        i += 1;
    }
    name
}

/// `s` fit for a TOML comment: control characters (a `\n` from a quoted keepalived word) become `?`.
pub(super) fn flat(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

/// A TOML string.
pub(super) fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// keepalived's `<TIMER>` (seconds, fractions allowed) in word `i + 1` of `node`.
pub(super) fn seconds(node: &Node, i: usize) -> Result<f64, ImportError> {
    node.arg(i)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e7)
        .ok_or_else(|| {
            ImportError::at(
                &node.pos,
                format!(
                    "{} {}: not a number of seconds",
                    node.keyword(),
                    node.arg(i).unwrap_or("")
                ),
                format!(
                    "write e.g. {} 1 (seconds; fractions like 0.5 allowed)",
                    node.keyword()
                ),
            )
        })
}

/// Global settings with nothing to import: they tune keepalived's process, logging or e-mail.
const GLOBAL_SAME: &[&str] = &[
    "router_id",
    "notification_email",
    "notification_email_from",
    "smtp_server",
    "smtp_connect_timeout",
    "smtp_helo_name",
    "script_user",
    "enable_script_security",
    "max_auto_priority",
    "min_auto_priority_delay",
    "lvs_id",
    "dynamic_interfaces",
    "vrrp_skip_check_adv_addr",
    "vrrp_check_unicast_src",
    "vrrp_priority",
    "checker_priority",
    "bfd_priority",
    "vrrp_no_swap",
    "checker_no_swap",
    "bfd_no_swap",
    "vrrp_rt_priority",
    "checker_rt_priority",
    "bfd_rt_priority",
    "process_names",
    "vrrp_process_name",
    "checker_process_name",
    "bfd_process_name",
    "vrrp_rlimit_rttime",
    "checker_rlimit_rttime",
    "bfd_rlimit_rttime",
    "vrrp_cpu_affinity",
    "checker_cpu_affinity",
    "bfd_cpu_affinity",
    "umask",
    "use_pid_dir",
    "child_wait_time",
    "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_cmd_rcv_bufs_force",
    "vrrp_netlink_monitor_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs_force",
    "vrrp_rx_bufs_policy",
    "vrrp_rx_bufs_multiplier",
    "random_seed",
    "include_check",
    "vrrp_lower_prio_no_advert",
    "vrrp_higher_prio_send_advert",
    "vrrp_garp_lower_prio_delay",
    "vrrp_garp_lower_prio_repeat",
    "vrrp_gna_interval",
    "vrrp_min_garp",
    "no_email_faults",
    "checker_log_all_failures",
    "smtp_alert_checker",
    "no_checker_emails",
    "lvs_flush",
    "lvs_flush_on_stop",
    "linkbeat_use_polling",
    "data_use_instance",
    "tmp_config_directory",
    "config_save_dir",
    "reload_check_config",
    "state_file_location",
    "stats_file_location",
    "json_file_location",
    "json_version",
    "log_unknown_vrids",
];

/// The floatip configuration for the keepalived statements `nodes`; `source` names the input in the header.
pub fn map(
    nodes: &[Node],
    source: &str,
    config_id: &str,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Imported, ImportError> {
    let mut cx = Ctx {
        notes: Vec::new(),
        vrrp_version: 2,
        v3_checksum_as_v2: None,
        garp: HashMap::new(),
        scripts: HashMap::new(),
        track_files: HashMap::new(),
        used_scripts: BTreeSet::new(),
        used_files: BTreeSet::new(),
        instance_names: HashMap::new(),
        instance_pos: HashMap::new(),
        dropped: Vec::new(),
        sync_member: HashMap::new(),
        weightless: None,
        taken: BTreeSet::new(),
        exists,
    };
    let mut top = String::new();
    // Definitions and globals first: instances refer to them wherever they are written.
    for n in nodes {
        match n.keyword() {
            "global_defs" => globals(&mut cx, n, &mut top)?,
            "vrrp_script" => define(&mut cx, n, true)?,
            "track_file" | "vrrp_track_file" if n.block.is_some() && n.arg(0).is_some() => {
                define(&mut cx, n, false)?
            }
            "vrrp_sync_group" => members(&mut cx, n),
            _ => {}
        }
    }
    let mut body = String::new();
    let mut groups = Vec::new();
    let mut instances = Vec::new();
    for n in nodes {
        match n.keyword() {
            "global_defs" | "vrrp_script" | "track_file" | "vrrp_track_file" => {}
            "vrrp_instance" => instances.extend(super::instance::instance(&mut cx, n)?),
            "vrrp_sync_group" => groups.push(n),
            k => {
                let (why, person) = match k {
                    "virtual_server" | "virtual_server_group" => ("LVS load balancing is not what floatip does; keep keepalived (or ipvsadm) for it", true),
                    "static_ipaddress" | "static_routes" | "static_rules" => ("floatip does not manage static addresses, routes or rules; keep them in the host's network configuration", true),
                    "bfd_instance" => ("floatip has no BFD; a witness or a check covers the same ground", true),
                    "net_namespace" | "net_namespace_ipvs" => ("run floatip itself in that namespace (ip netns exec NAME floatip run)", true),
                    "linkbeat_interfaces" | "linkbeat_use_polling" => ("floatip follows links through netlink", false),
                    _ => ("no floatip equivalent; not imported", true),
                };
                let what = flat(&n.words.join(" "));
                cx.note(&n.pos, format!("{what}: {why}"), person);
                top.push_str(&format!(
                    "# {} ({}): {what}: {why}\n",
                    if person { "NEEDS A PERSON" } else { "note" },
                    n.pos
                ));
            }
        }
    }
    let had_instances = !instances.is_empty();
    across(&mut cx, &mut instances)?;
    let enabled: BTreeSet<String> = instances
        .iter()
        .filter(|m| !m.inst.disabled)
        .map(|m| m.kname.clone())
        .collect();
    for c in std::mem::take(&mut cx.dropped) {
        body.push('\n');
        body.push_str(&c);
        body.push('\n');
    }
    for m in instances {
        m.inst.write(&m.node, &m.kname, &mut body);
    }
    let mut grouped = BTreeSet::new();
    for g in groups {
        sync_group(&mut cx, g, &enabled, &mut grouped, &mut body);
    }
    for (name, def) in cx.scripts.clone() {
        if !cx.used_scripts.contains(&name) {
            cx.note(&def.pos, format!("vrrp_script {name} is tracked by no instance (keepalived does not run it either)"), false);
        }
    }
    let mut out = format!(
        "# floatip configuration imported from keepalived ({source}, config-id \"{config_id}\") by\n\
         # `floatip import keepalived`. Each line says which keepalived line it came from. Lines marked\n\
         # NEEDS A PERSON had no exact floatip equivalent: read them, then check the file with\n\
         # `floatip check --config PATH`. Every key: docs/config.md; the way over: docs/migrating-from-keepalived.md.\n"
    );
    if !top.is_empty() {
        out.push('\n');
        out.push_str(&top);
    }
    out.push_str(&body);
    if !out.contains("\n[[instance]]") {
        let text = if had_instances {
            "no vrrp_instance that floatip can run (each one is left out, see above)"
        } else {
            "no vrrp_instance: nothing for floatip to run"
        };
        cx.note(
            &Pos {
                file: std::rc::Rc::from(Path::new(source)),
                line: 0,
            },
            text.into(),
            true,
        );
    }
    cx.notes
        .sort_by(|a, b| (a.pos.file.as_ref(), a.pos.line).cmp(&(b.pos.file.as_ref(), b.pos.line)));
    Ok(Imported {
        toml: out,
        notes: cx.notes,
        unwritable: None,
    })
}

fn define(cx: &mut Ctx, n: &Node, script: bool) -> Result<(), ImportError> {
    let name = n.arg(0).ok_or_else(|| {
        ImportError::at(
            &n.pos,
            format!("{} without a name", n.keyword()),
            format!("write {} NAME {{ ... }}", n.keyword()),
        )
    })?;
    let map = if script {
        &mut cx.scripts
    } else {
        &mut cx.track_files
    };
    map.insert(name.to_string(), n.clone());
    Ok(())
}

fn globals(cx: &mut Ctx, n: &Node, top: &mut String) -> Result<(), ImportError> {
    for g in n.children() {
        let k = g.keyword();
        match k {
            "vrrp_version" => {
                cx.vrrp_version = match g.arg(0) {
                    Some("2") => 2,
                    Some("3") => 3,
                    other => {
                        return Err(ImportError::at(
                            &g.pos,
                            format!("vrrp_version {} is not 2 or 3", other.unwrap_or("")),
                            "write vrrp_version 2 or vrrp_version 3",
                        ))
                    }
                }
            }
            "v3_checksum_as_v2" => cx.v3_checksum_as_v2 = Some(g.clone()),
            "vrrp_garp_master_delay"
            | "vrrp_garp_master_repeat"
            | "vrrp_garp_master_refresh"
            | "vrrp_garp_master_refresh_repeat"
            | "vrrp_garp_interval" => {
                cx.garp
                    .insert(k.trim_start_matches("vrrp_").to_string(), g.clone());
            }
            _ => {
                let person = !GLOBAL_SAME.contains(&k);
                let why = match k {
                    "smtp_alert" | "smtp_alert_vrrp" => "floatip sends no e-mail; a notify hook can",
                    "enable_traps" | "enable_snmp_vrrp" | "enable_snmp_checker" | "enable_snmp_rfc" | "enable_snmp_rfcv2" | "enable_snmp_rfcv3" | "snmp_socket" => "floatip has no SNMP; it serves Prometheus metrics ([daemon] metrics)",
                    "enable_dbus" | "dbus_service_name" | "dbus_no_interface_name" => "floatip has no DBus interface; `floatip status --json` and the control socket",
                    "vrrp_strict" => "floatip has no strict mode (it never adds firewall rules); keepalived's strict mode also refuses unicast and authentication",
                    "vrrp_mcast_group4" | "vrrp_mcast_group6" => "floatip sends to the standard group 224.0.0.18 / ff02::12",
                    "vrrp_notify_fifo" | "notify_fifo" | "vrrp_notify_fifo_script" | "notify_fifo_script" => "floatip has hooks and `floatip status`, no FIFO",
                    _ if person => "no floatip equivalent; not imported",
                    _ => "tunes keepalived's own process or e-mail; nothing to import",
                };
                cx.note(
                    &g.pos,
                    format!("global_defs {}: {why}", g.words.join(" ")),
                    person,
                );
                if person {
                    top.push_str(&format!(
                        "# NEEDS A PERSON ({}): global_defs {}: {why}\n",
                        g.pos,
                        flat(&g.words.join(" "))
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Which instances a sync group holds, for the rules keepalived applies to its members' tracking
/// weights (read before the instances are mapped). An instance already in a group stays there.
fn members(cx: &mut Ctx, g: &Node) {
    let name = g.arg(0).unwrap_or("group").to_string();
    let keep_weights = g
        .children()
        .iter()
        .any(|c| c.keyword() == "sync_group_tracking_weight");
    for c in g.children().iter().filter(|c| c.keyword() == "group") {
        for m in c.children().iter().flat_map(|m| m.words.iter()) {
            cx.sync_member
                .entry(m.clone())
                .or_insert_with(|| (name.clone(), keep_weights));
        }
    }
}

/// The rules floatip checks across instances that keepalived does not (or checks otherwise): one
/// virtual router per VRID, interface and family; one instance per address. What keepalived refuses
/// is refused with keepalived's words; what it runs and floatip cannot is left out and said.
fn across(cx: &mut Ctx, instances: &mut [super::instance::Mapped]) -> Result<(), ImportError> {
    for i in 0..instances.len() {
        let (before, rest) = instances.split_at_mut(i);
        let m = &mut rest[0];
        if m.inst.disabled {
            continue;
        }
        for o in before.iter().filter(|o| !o.inst.disabled) {
            if o.interface != m.interface || o.vrid != m.vrid || o.v6 != m.v6 {
                continue;
            }
            let family = if m.v6 { 6 } else { 4 };
            if o.peers.is_empty() && m.peers.is_empty() {
                return Err(ImportError::at(
                    &m.node.pos,
                    format!(
                        "{} and {} both use VRID {} with IPv{family} on interface {}",
                        o.kname, m.kname, m.vrid, m.interface
                    ),
                    "keepalived refuses this too (keepalived -t says the same): give each instance on one interface its own virtual_router_id",
                ));
            }
            if o.peers.iter().any(|p| m.peers.contains(p)) {
                return Err(ImportError::at(
                    &m.node.pos,
                    format!(
                        "({}) duplicate VRID conflict with {} VRID {}",
                        o.kname, m.kname, m.vrid
                    ),
                    "keepalived refuses this too (keepalived -t says the same): two instances with one VRID on one interface need unicast peers of their own; give one its own virtual_router_id",
                ));
            }
            let how = if o.peers.is_empty() || m.peers.is_empty() {
                "one of them multicast, the other unicast"
            } else {
                "each with unicast peers of its own"
            };
            let text = format!("vrrp_instance {}: VRID {} on {} for IPv{family} is also vrrp_instance {}'s ({}), {how}; keepalived runs both, floatip runs one virtual router per VRID, interface and family, so this instance is left commented out: give it a virtual_router_id of its own on every host (keepalived's too), then uncomment it", m.kname, m.vrid, m.interface, o.kname, o.node.pos);
            m.inst.needs(cx, &m.node.pos, text);
            m.inst.disabled = true;
            break;
        }
        if m.inst.disabled {
            continue;
        }
        let mut kept = Vec::new();
        for (vip, pos) in std::mem::take(&mut m.inst.addresses) {
            let owner = before
                .iter()
                .filter(|o| !o.inst.disabled)
                .find(|o| o.inst.addresses.iter().any(|(v, _)| v.addr == vip.addr));
            match owner {
                Some(o) => {
                    let text = format!("{} is also in vrrp_instance {} ({}): keepalived runs both instances with it (two owners whenever they disagree), floatip keeps an address in one instance: it stays in {} only", vip.addr, o.kname, o.node.pos, o.kname);
                    m.inst.needs(cx, &pos, text);
                }
                None => kept.push((vip, pos)),
            }
        }
        if kept.is_empty() {
            let text = format!("vrrp_instance {}: every address is another instance's; the instance is left commented out", m.kname);
            m.inst.needs(cx, &m.node.pos, text);
            m.inst.disabled = true;
        }
        m.inst.addresses = kept;
    }
    Ok(())
}

fn sync_group(
    cx: &mut Ctx,
    g: &Node,
    enabled: &BTreeSet<String>,
    grouped: &mut BTreeSet<String>,
    out: &mut Out,
) {
    let kname_raw = g.arg(0).unwrap_or("group");
    let kname = &flat(kname_raw);
    let mut members = Vec::new();
    let mut comments = Vec::new();
    for c in g.children() {
        match c.keyword() {
            "sync_group_tracking_weight" => cx.note(&c.pos, format!("vrrp_sync_group {kname} sync_group_tracking_weight: the members' tracking weights are kept, as keepalived does with it"), false),
            "group" => {
                for m in c.children().iter().flat_map(|m| m.words.iter()) {
                    match cx.instance_names.get(m) {
                        Some(_) if grouped.contains(m) && !members.contains(&cx.instance_names[m]) => {
                            cx.note(&c.pos, format!("vrrp_sync_group {kname}: {m} is already in another sync group; keepalived leaves it there (\"Virtual router {m} cannot exist in more than one sync group\"), and so does this import"), false);
                        }
                        Some(_) if !enabled.contains(m) => {
                            cx.note(&c.pos, format!("vrrp_sync_group {kname}: {m} is left commented out above, so it is no member here"), true);
                        }
                        Some(name) if !members.contains(name) => {
                            grouped.insert(m.clone());
                            members.push(name.clone());
                        }
                        Some(_) => {}
                        None => {
                            cx.note(&c.pos, format!("vrrp_sync_group {kname}: no vrrp_instance {m} (keepalived ignores it too)"), false);
                        }
                    }
                }
            }
            k if cx.instance_names.contains_key(k) => {
                cx.note(&c.pos, format!("vrrp_sync_group {kname}: {k} is written outside `group {{ }}`; keepalived ignores it there (so it is no member in keepalived either); written as a member it would be"), false);
                comments.push(flat(&format!("# note ({}): {k} outside `group {{ }}`: keepalived ignores it, so does this import", c.pos)));
            }
            k => {
                let why = if k.starts_with("notify") {
                    "floatip groups have no hooks of their own: every member runs its instance's hooks; put the script on one member's [instance.notify]"
                } else {
                    "no floatip equivalent for a group; not imported"
                };
                cx.note(
                    &c.pos,
                    format!("vrrp_sync_group {kname} {}: {why}", c.words.join(" ")),
                    true,
                );
                comments.push(flat(&format!(
                    "# NEEDS A PERSON ({}): {}: {why}",
                    c.pos,
                    c.words.join(" ")
                )));
            }
        }
    }
    out.push('\n');
    for c in comments {
        out.push_str(&c);
        out.push('\n');
    }
    if members.len() < 2 {
        cx.note(&g.pos, format!("vrrp_sync_group {kname} has {} instance(s): a floatip group needs two; left out (one instance is its own group)", members.len()), false);
        out.push_str(&format!(
            "# vrrp_sync_group {kname} ({}): fewer than two instances, no [[group]]\n",
            g.pos
        ));
        return;
    }
    let name = cx.unique_name(kname, &g.pos);
    out.push_str(&format!(
        "[[group]]   # vrrp_sync_group {kname} ({})\nname = {}\ninstances = [{}]\n",
        g.pos,
        q(&name),
        members.iter().map(|m| q(m)).collect::<Vec<_>>().join(", ")
    ));
}
