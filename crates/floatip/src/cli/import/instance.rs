//! One keepalived `vrrp_instance` to one floatip `[[instance]]` (with its announce, auth, checks,
//! track files and hooks). What has no exact equivalent becomes a [`Note`] at the spot; a value
//! keepalived itself refuses is an [`ImportError`] with its file:line.

use std::net::IpAddr;

use super::map::{flat, q, seconds, Ctx, Note, Out};
use super::reader::{ImportError, Pos};
use super::tree::Node;
use crate::config::Vip;

/// Keywords of a vrrp_instance that change nothing floatip does differently (said once, in a note).
const SAME: &[&str] = &[
    "preempt",
    "debug",
    "accept",
    "skip_check_adv_addr",
    "native_ipv6",
    "kernel_rx_buf_size",
    "check_unicast_src",
    "higher_prio_send_advert",
    "lower_prio_no_advert",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
    "gna_interval",
    "down_timer_adverts",
    "linkbeat_use_polling",
    "promote_secondaries",
    "netlink_notify_msg",
    "unicast_fault_no_peer",
    "timer_expired_backup",
];

/// One mapped instance, written once the rules across instances ([`super::map`]) have run.
pub(super) struct Mapped {
    pub node: Node,
    pub kname: String,
    pub inst: Inst,
    pub interface: String,
    pub vrid: u8,
    pub v6: bool,
    pub peers: Vec<IpAddr>,
}

/// The instance `node`, or `None` when keepalived ignores it (a second definition of a name).
pub(super) fn instance(cx: &mut Ctx, node: &Node) -> Result<Option<Mapped>, ImportError> {
    let kname = node.arg(0).ok_or_else(|| {
        ImportError::at(
            &node.pos,
            "vrrp_instance without a name",
            "write vrrp_instance NAME { ... }",
        )
    })?;
    if let Some(first) = cx.instance_pos.get(kname) {
        // keepalived -t: "vrrp instance C already defined"; it runs the first one.
        let text = format!(
            "vrrp instance {kname} already defined (at {first}): keepalived ignores this second definition, and so does this import"
        );
        cx.notes.push(Note {
            pos: node.pos.clone(),
            text: flat(&text),
            needs_person: false,
        });
        cx.dropped
            .push(format!("# note ({}): {}", node.pos, flat(&text)));
        return Ok(None);
    }
    cx.instance_pos.insert(kname.to_string(), node.pos.clone());
    let name = cx.unique_name(kname, &node.pos);
    cx.instance_names.insert(kname.to_string(), name.clone());
    let mut inst = Inst::new(name.clone());
    let kids = node.children();
    let find = |key: &str| kids.iter().rev().find(|n| n.keyword() == key);

    let interface =
        find("interface").and_then(|n| n.arg(0).map(|a| (a.to_string(), n.pos.clone())));
    let Some((interface, ifpos)) = interface else {
        return Err(ImportError::at(
            &node.pos,
            format!("vrrp_instance {kname} has no interface"),
            "add `interface eth0` (the LAN interface) to the block",
        ));
    };
    inst.line("interface", q(&interface), &ifpos, "interface");
    let vrid_node = find("virtual_router_id").ok_or_else(|| {
        ImportError::at(
            &node.pos,
            format!("vrrp_instance {kname} has no virtual_router_id"),
            "keepalived refuses an instance without one: add `virtual_router_id 51`",
        )
    })?;
    let vrid: u8 = vrid_node
        .arg(0)
        .and_then(|v| v.parse().ok())
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            ImportError::at(
                &vrid_node.pos,
                format!(
                    "virtual_router_id {} is not 1-255",
                    vrid_node.arg(0).unwrap_or("")
                ),
                "keepalived refuses it too: use a number from 1 to 255",
            )
        })?;
    inst.line(
        "vrid",
        vrid.to_string(),
        &vrid_node.pos,
        "virtual_router_id",
    );

    let mut priority = 100u32;
    if let Some(n) = find("priority") {
        match n.arg(0).and_then(|v| v.parse::<u32>().ok()).filter(|v| (1..=255).contains(v)) {
            Some(p) => {
                priority = p;
                inst.line("priority", priority.to_string(), &n.pos, "priority");
            }
            // keepalived: "Priority not valid! must be between 1 & 255. Using default 100".
            None => inst.needs(
                cx,
                &n.pos,
                format!(
                    "priority {} is not 1-255: keepalived runs this instance at its default 100, and so \
                     does this import; write the priority you meant",
                    n.arg(0).unwrap_or("")
                ),
            ),
        }
    }

    // Addresses first: their family decides the version.
    let mut addrs: Vec<(Vip, Pos)> = Vec::new();
    if let Some(block) = find("virtual_ipaddress") {
        for a in block.children() {
            vip(cx, a, &interface, &mut addrs, &mut inst)?;
        }
    }
    let v6 = addrs.first().is_some_and(|(v, _)| v.addr.is_ipv6());
    let (family, other): (Vec<_>, Vec<_>) =
        addrs.into_iter().partition(|(v, _)| v.addr.is_ipv6() == v6);
    for (v, pos) in &other {
        // keepalived -t: "(VI_1): address family must match VRRP instance [2001:db8::51/64] - ignoring".
        inst.note(cx, pos, format!("{v}: keepalived ignores an address of the other family than the instance's first (\"address family must match VRRP instance [{v}] - ignoring\"), and so does this import; to move it, add an [[instance]] of its own"));
    }
    if let Some(block) = find("virtual_ipaddress_excluded") {
        for a in block.children() {
            inst.needs(cx, &a.pos, format!("virtual_ipaddress_excluded {}: floatip has no addresses outside the adverts; list it in `addresses` on every host (also keepalived's, as a virtual_ipaddress) or move it to its own instance", a.words.join(" ")));
        }
    }

    let version = match find("version") {
        Some(n) => match n.arg(0) {
            Some("2") if v6 => {
                inst.note(cx, &n.pos, "version 2 with IPv6 addresses: keepalived speaks VRRPv3 for IPv6, so does floatip");
                3
            }
            Some("2") => 2,
            Some("3") => 3,
            other => {
                return Err(ImportError::at(
                    &n.pos,
                    format!("version {} is not 2 or 3", other.unwrap_or("")),
                    "write version 2 or version 3",
                ))
            }
        },
        None if v6 => 3,
        None => cx.vrrp_version,
    };
    inst.line(
        "version",
        version.to_string(),
        find("version").map_or(&node.pos, |n| &n.pos),
        if find("version").is_some() {
            "version"
        } else if v6 {
            "IPv6: keepalived speaks VRRPv3 for it"
        } else if cx.vrrp_version == 3 {
            "global vrrp_version"
        } else {
            "keepalived's default for IPv4"
        },
    );

    let advert = match find("advert_int") {
        Some(n) => Some((seconds(n, 0)?, n.pos.clone())),
        None => None,
    };
    let advert_s = advert.as_ref().map_or(1.0, |a| a.0);
    let shown = if version == 2 {
        let whole = advert_s.round().clamp(1.0, 255.0);
        if (whole - advert_s).abs() > 1e-9 {
            inst.note(
                cx,
                advert.as_ref().map_or(&node.pos, |a| &a.1),
                format!("advert_int {advert_s}: VRRPv2 counts whole seconds; {whole}s"),
            );
        }
        format!("{whole}s")
    } else {
        let cs = (advert_s * 100.0).round().clamp(1.0, 4095.0) as u64;
        if cs % 100 == 0 {
            format!("{}s", cs / 100)
        } else {
            format!("{}ms", cs * 10)
        }
    };
    if let Some((_, pos)) = &advert {
        inst.line("advert_interval", q(&shown), pos, "advert_int");
    }

    // keepalived: `state MASTER` anywhere in the block wins over `state BACKUP`.
    let state_master = kids
        .iter()
        .any(|n| n.keyword() == "state" && n.arg(0) == Some("MASTER"));
    let mut nopreempt = find("nopreempt");
    if let Some(n) = nopreempt {
        if priority == 255 {
            inst.note(cx, &n.pos, "nopreempt with priority 255: keepalived resets it (\"nopreempt is incompatible with priority 255. resetting nopreempt\"): an address owner always preempts; imported with preempt, as keepalived runs it");
            nopreempt = None;
        } else if state_master {
            inst.note(cx, &n.pos, "nopreempt with state MASTER: keepalived clears it (\"Warning - nopreempt will not work with initial state MASTER - clearing\") and preempts; imported with preempt, as keepalived runs it. To stop preempting, use state BACKUP with nopreempt on every host");
            nopreempt = None;
        } else {
            inst.line("preempt", "false".into(), &n.pos, "nopreempt");
        }
    }
    if let Some(n) = find("preempt_delay") {
        let d = seconds(n, 0)?;
        if state_master {
            inst.note(cx, &n.pos, "preempt_delay with state MASTER: keepalived clears it (\"Warning - preempt delay will not work with initial state MASTER - clearing\"); left out, as keepalived runs it");
        } else if nopreempt.is_some() {
            inst.note(cx, &n.pos, "preempt_delay with nopreempt does nothing in keepalived; left out (floatip refuses the pair)");
        } else {
            inst.line(
                "preempt_delay",
                q(&fmt_secs(d.min(3600.0))),
                &n.pos,
                "preempt_delay",
            );
        }
    }
    // Written with the instance: the rules across instances may still take some out.
    inst.addresses_at = inst.lines.len();
    if family.is_empty() {
        // keepalived -t: "(NAME) No VIP specified; at least one is sensible".
        inst.needs(cx, &node.pos, "no virtual_ipaddress: keepalived runs an instance without addresses (\"No VIP specified; at least one is sensible\"), a floatip instance moves at least one address; the instance is left commented out".to_string());
        inst.disabled = true;
    }
    inst.addresses = family;
    let mut peer_addrs: Vec<IpAddr> = Vec::new();
    if let Some(block) = find("unicast_peer") {
        let mut peers = Vec::new();
        for p in block.children() {
            match p.keyword().parse::<IpAddr>() {
                Ok(a) if a.is_ipv6() == v6 => {
                    if !peer_addrs.contains(&a) {
                        peer_addrs.push(a);
                        peers.push(q(&a.to_string()));
                    }
                }
                Ok(a) => inst.needs(
                    cx,
                    &p.pos,
                    format!("unicast_peer {a}: not the family of the addresses"),
                ),
                Err(_) => {
                    return Err(ImportError::at(
                        &p.pos,
                        format!("unicast_peer {} is not an IP address", p.keyword()),
                        "list the other hosts' own addresses, one per line",
                    ))
                }
            }
            if p.words.len() > 1 {
                inst.note(
                    cx,
                    &p.pos,
                    format!(
                        "unicast_peer options `{}`: floatip checks TTL 255 on every advert",
                        p.words[1..].join(" ")
                    ),
                );
            }
        }
        if !peers.is_empty() {
            inst.line(
                "unicast_peers",
                format!("[{}]", peers.join(", ")),
                &block.pos,
                "unicast_peer",
            );
        }
    }
    for key in ["unicast_src_ip", "mcast_src_ip"] {
        if let Some(n) = find(key) {
            inst.note(cx, &n.pos, format!("{key} {}: floatip sends from {interface}'s primary address; make sure that is this one", n.arg(0).unwrap_or("")));
        }
    }
    if let Some(n) = find("v3_checksum_as_v2").or(cx.v3_checksum_as_v2.as_ref()) {
        if version == 3 && !v6 {
            inst.line("checksum", q("message-only"), &n.pos, "v3_checksum_as_v2");
        }
    }
    super::settings::auth(
        cx,
        find("authentication"),
        find("auth_hmac"),
        version,
        &name,
        &mut inst,
    );
    if let Some(n) = find("use_vmac") {
        inst.line("vmac", "true".into(), &n.pos, "use_vmac");
        if let Some(ifname) = n.arg(0) {
            inst.line("vmac_interface", q(ifname), &n.pos, "use_vmac NAME");
        }
    }
    // keepalived drops the weights of what an address owner or a sync group member tracks.
    cx.weightless = if priority == 255 {
        Some("an address owner (priority 255): keepalived clears it".to_string())
    } else {
        match cx.sync_member.get(kname) {
            Some((group, false)) => Some(format!(
                "sync group {group}: keepalived ignores it (\"... due to SYNC group\")"
            )),
            _ => None,
        }
    };
    super::track::interfaces(cx, find("track_interface"), &interface, &mut inst);
    super::track::scripts(cx, find("track_script"), &mut inst);
    super::track::files(cx, find("track_file"), &mut inst);
    super::settings::notify(cx, kids, kname, priority, &mut inst);
    super::settings::announce(cx, kids, &mut inst)?;

    for n in kids {
        let k = n.keyword();
        let handled = matches!(
            k,
            "interface"
                | "virtual_router_id"
                | "priority"
                | "virtual_ipaddress"
                | "virtual_ipaddress_excluded"
                | "version"
                | "advert_int"
                | "nopreempt"
                | "preempt_delay"
                | "unicast_peer"
                | "unicast_src_ip"
                | "mcast_src_ip"
                | "v3_checksum_as_v2"
                | "authentication"
                | "auth_hmac"
                | "use_vmac"
                | "track_interface"
                | "track_script"
                | "track_file"
                | "notify"
                | "notify_master"
                | "notify_backup"
                | "notify_fault"
                | "notify_stop"
        ) || k.starts_with("garp_");
        if handled {
            continue;
        }
        let text = n.words.join(" ");
        match k {
            "state" if state_master && n.arg(0) != Some("MASTER") => inst.note(cx, &n.pos, format!("{text}: keepalived ignores it, the block also says state MASTER")),
            "state" if n.arg(0) == Some("MASTER") && priority < 255 => inst.note(cx, &n.pos, "state MASTER: floatip starts every instance as BACKUP and claims once no better master is heard (priority 255 claims at once)"),
            "state" => inst.note(cx, &n.pos, format!("{text}: floatip starts every instance as BACKUP")),
            "smtp_alert" => inst.needs(cx, &n.pos, "smtp_alert: floatip sends no e-mail; a notify hook can (see docs/hooks.md)".into()),
            "dont_track_primary" => inst.needs(cx, &n.pos, format!("dont_track_primary: floatip always gives the address up (FAULT) when {interface} goes down")),
            "vmac_xmit_base" | "use_vmac_addr" | "use_ipvlan" => inst.needs(cx, &n.pos, format!("{k}: floatip's virtual MAC has no such option")),
            "virtual_routes" | "virtual_rules" => inst.needs(cx, &n.pos, format!("{k}: floatip moves addresses, not routes or rules; add them from a notify hook or keep them static")),
            "track_process" | "track_bfd" => inst.needs(cx, &n.pos, format!("{k}: no floatip equivalent; an exec check (e.g. pidof PROGRAM) does the same")),
            _ if SAME.contains(&k) => inst.note(cx, &n.pos, format!("{text}: nothing to import (floatip behaves this way, or the setting only tunes keepalived)")),
            _ => inst.needs(cx, &n.pos, format!("{text}: no floatip equivalent; not imported")),
        }
    }
    Ok(Some(Mapped {
        node: node.clone(),
        kname: kname.to_string(),
        inst,
        interface,
        vrid,
        v6,
        peers: peer_addrs,
    }))
}

fn vip(
    cx: &mut Ctx,
    a: &Node,
    interface: &str,
    addrs: &mut Vec<(Vip, Pos)>,
    inst: &mut Inst,
) -> Result<(), ImportError> {
    let word = a.keyword();
    let (addr, len) = match word.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (word, None),
    };
    // 192.0.2.10-20: a range of the last byte.
    let mut list: Vec<IpAddr> = Vec::new();
    match addr.parse::<IpAddr>() {
        Ok(ip) => list.push(ip),
        Err(_) => {
            let bad = || {
                ImportError::at(
                    &a.pos,
                    format!("{word} is not an address"),
                    "write ADDR[/LEN] [dev IF] [label IF:N], e.g. 192.0.2.97/24",
                )
            };
            let (first, last) = addr.rsplit_once('-').ok_or_else(bad)?;
            let IpAddr::V4(start) = first.parse::<IpAddr>().map_err(|_| bad())? else {
                return Err(bad());
            };
            let last: u8 = last.parse().map_err(|_| bad())?;
            let o = start.octets();
            for b in o[3]..=last {
                list.push(IpAddr::from([o[0], o[1], o[2], b]));
            }
        }
    }
    for ip in list {
        let len = match len {
            Some(l) => l.to_string(),
            None => {
                if ip.is_ipv6() {
                    "128".into()
                } else {
                    "32".into()
                }
            }
        };
        let text = format!("{ip}/{len}");
        let vip: Vip = match text.parse() {
            Ok(v) => v,
            Err(e) => {
                inst.needs(
                    cx,
                    &a.pos,
                    format!("{text}: floatip refuses it as a service address: {e}"),
                );
                continue;
            }
        };
        if addrs.iter().any(|(v, _)| v.addr == vip.addr) {
            inst.note(
                cx,
                &a.pos,
                format!("{ip} is listed twice; floatip takes it once"),
            );
            continue;
        }
        addrs.push((vip, a.pos.clone()));
    }
    let mut opts = a.words[1..].iter();
    while let Some(opt) = opts.next() {
        match opt.as_str() {
            "dev" => match opts.next() {
                Some(dev) if dev == interface => {}
                Some(dev) => inst.needs(cx, &a.pos, format!("{word} dev {dev}: floatip adds an instance's addresses to its interface ({interface}); move it to an instance on {dev}")),
                None => {}
            },
            "label" => {
                let l = opts.next().map_or("", String::as_str);
                inst.note(cx, &a.pos, format!("{word} label {l}: floatip adds the address without a label (a name for ifconfig only)"));
            }
            "no_track" => inst.note(cx, &a.pos, format!("{word} no_track: floatip puts a removed address back while master")),
            "brd" | "broadcast" | "scope" | "preferred_lft" | "metric" => {
                let v = opts.next().map_or("", String::as_str);
                inst.note(cx, &a.pos, format!("{word} {opt} {v}: floatip adds the address with the kernel's defaults"));
            }
            other => inst.needs(cx, &a.pos, format!("{word} option `{other}`: not imported")),
        }
    }
    Ok(())
}

pub(super) fn fmt_secs(s: f64) -> String {
    let ms = (s * 1000.0).round() as u64;
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The `[[instance]]` being written.
pub(super) struct Inst {
    pub name: String,
    pub lines: Vec<String>,
    pub comments: Vec<String>,
    pub auth: Vec<String>,
    pub auth_keys: Vec<String>,
    pub announce: Vec<String>,
    pub checks: Vec<String>,
    pub track_files: Vec<String>,
    pub notify: Vec<String>,
    /// The VIPs, written at `addresses_at` among `lines`.
    pub addresses: Vec<(Vip, Pos)>,
    pub addresses_at: usize,
    pub disabled: bool,
}

impl Inst {
    fn new(name: String) -> Inst {
        Inst {
            name,
            lines: Vec::new(),
            comments: Vec::new(),
            auth: Vec::new(),
            auth_keys: Vec::new(),
            announce: Vec::new(),
            checks: Vec::new(),
            track_files: Vec::new(),
            notify: Vec::new(),
            addresses: Vec::new(),
            addresses_at: 0,
            disabled: false,
        }
    }

    pub fn line(&mut self, key: &str, value: String, pos: &Pos, from: &str) {
        let comment = flat(&format!("{from} ({pos})"));
        self.lines.push(format!("{key} = {value}   # {comment}"));
    }

    /// Said in the output and on stderr; the result still behaves the same.
    pub fn note(&mut self, cx: &mut Ctx, pos: &Pos, text: impl Into<String>) {
        let text = flat(&text.into());
        self.comments.push(format!("# note ({pos}): {text}"));
        cx.notes.push(Note {
            pos: pos.clone(),
            text,
            needs_person: false,
        });
    }

    /// Said in the output and on stderr, and the import is not complete.
    pub fn needs(&mut self, cx: &mut Ctx, pos: &Pos, text: String) {
        let text = flat(&text);
        self.comments
            .push(format!("# NEEDS A PERSON ({pos}): {text}"));
        cx.notes.push(Note {
            pos: pos.clone(),
            text,
            needs_person: true,
        });
    }

    pub fn write(mut self, node: &Node, kname: &str, out: &mut Out) {
        let kname = flat(kname);
        if let Some((_, pos)) = self.addresses.first() {
            let list: Vec<String> = self
                .addresses
                .iter()
                .map(|(v, _)| q(&v.to_string()))
                .collect();
            let line = format!(
                "addresses = [{}]   # {}",
                list.join(", "),
                flat(&format!("virtual_ipaddress ({pos})"))
            );
            let at = self.addresses_at.min(self.lines.len());
            self.lines.insert(at, line);
        }
        let mut body = Vec::new();
        body.push("[[instance]]".to_string());
        body.push(format!(
            "name = {}   # vrrp_instance {kname} ({})",
            q(&self.name),
            flat(&node.pos.to_string())
        ));
        body.extend(self.lines);
        let tables: [(&str, Vec<String>); 2] = [
            ("[instance.announce]", self.announce),
            ("[instance.auth]", self.auth),
        ];
        for (head, lines) in tables {
            if !lines.is_empty() {
                body.push(String::new());
                body.push(head.to_string());
                body.extend(lines);
            }
        }
        for key in self.auth_keys {
            body.push(String::new());
            body.extend(key.lines().map(str::to_string));
        }
        for chunk in self.checks.into_iter().chain(self.track_files) {
            body.push(String::new());
            body.extend(chunk.lines().map(str::to_string));
        }
        if !self.notify.is_empty() {
            body.push(String::new());
            body.push("[instance.notify]".to_string());
            body.extend(self.notify);
        }
        out.push('\n');
        for c in self.comments {
            out.push_str(&c);
            out.push('\n');
        }
        for l in body {
            if self.disabled && !l.is_empty() {
                out.push_str("# ");
            }
            out.push_str(&l);
            out.push('\n');
        }
    }
}
