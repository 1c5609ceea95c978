//! `[[instance]]`: one virtual router, key by key, and the [`Facts`] the cross-instance rules need.

use std::collections::HashSet;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::addresses::{addresses, validate_addr_list};
use super::announce::validate_announce;
use super::auth::validate_auth;
use super::check::validate_check;
use super::notify::validate_notify;
use super::track_file::validate_track_files;
use super::vmac::validate_vmac;
use super::{is_valid_ifname, is_valid_name, Facts};
use crate::config::duration::format_duration;
use crate::config::error::Cx;
use crate::config::model::*;
use crate::config::raw::RawInstance;

/// Largest preempt_delay accepted: longer than any sane maintenance wait, short enough to catch a typo.
const MAX_PREEMPT_DELAY: Duration = Duration::from_secs(3600);
/// A kernel address lifetime longer than this would defeat the point of having one.
const MAX_ADDRESS_LIFETIME: Duration = Duration::from_secs(3600);

/// Reads one `[[instance]]`: its config when every key is valid, and in any case what the rules across
/// instances need from it.
pub(super) fn validate_instance(
    cx: &mut Cx<'_>,
    spanned: &Spanned<RawInstance>,
) -> (Option<InstanceConfig>, Facts) {
    let raw = spanned.get_ref();
    let table = spanned.span();
    let mut ok = true;
    let mut facts = Facts {
        name: None,
        interface: None,
        vrid: None,
        is_v6: None,
        vips: Vec::new(),
        etcd: None,
    };

    let name = name(cx, raw, &table, &mut facts);
    let label = name.clone().unwrap_or_else(|| "this instance".into());
    let interface = interface(cx, raw, &table, &label, &mut facts);
    let vrid = vrid(cx, raw, &table, &label, &mut facts);
    let priority = priority(cx, raw);
    let version = version(cx, raw);
    let (addresses, addresses_ok) = addresses(cx, raw, &table, &label, &mut facts);
    let is_v6 = facts.is_v6;

    if let (Some(vrrp::Version::V2), Some(true), Some(v)) = (version, is_v6, &raw.version) {
        cx.at(
            v.span(),
            "VRRPv2 is IPv4-only, but this instance's addresses are IPv6",
            "use version = 3 (the default) for IPv6 addresses",
        );
        ok = false;
    }

    let advert_interval = advert_interval(cx, raw, version);

    let preempt = raw.preempt.as_ref().is_none_or(|p| *p.get_ref());
    let preempt_delay = cx.duration(
        raw.preempt_delay.as_ref(),
        "preempt_delay",
        Duration::ZERO,
        Duration::ZERO,
        MAX_PREEMPT_DELAY,
    );
    if let (Some(_), Some(p), false) = (&raw.preempt_delay, &raw.preempt, preempt) {
        cx.at(
            p.span(),
            "preempt_delay is set but preempt = false, so it never applies",
            "remove preempt_delay, or set preempt = true",
        );
        ok = false;
    }

    // unicast_peers and witness: plain addresses of the instance's family.
    let unicast_peers = validate_addr_list(
        cx,
        raw.unicast_peers.as_ref(),
        "unicast_peers",
        is_v6,
        &addresses,
        "a peer router's own address on this LAN, e.g. \"192.0.2.2\"",
    );
    let witness = validate_addr_list(
        cx,
        raw.witness.as_ref(),
        "witness",
        is_v6,
        &addresses,
        "a node that is always up, typically the router, e.g. \"192.0.2.254\"",
    );

    let checksum = checksum(cx, raw, version, is_v6, &mut ok);

    let announce = match &raw.announce {
        None => Some(AnnounceConfig::default()),
        Some(a) => validate_announce(cx, a),
    };

    let address_lifetime = address_lifetime(cx, raw, advert_interval);
    let track_interfaces = track_interfaces(cx, raw, interface.as_ref(), &mut ok);
    let checks = checks(cx, raw, &label, &mut ok);
    let track_files = validate_track_files(cx, raw, &label, priority, &mut ok);
    let (vmac, vmac_interface) = validate_vmac(cx, raw, interface.as_ref(), &mut ok);

    let notify = match &raw.notify {
        None => Some(NotifyConfig::default()),
        Some(n) => validate_notify(cx, n),
    };

    let auth = match &raw.auth {
        None => Some(vrrp::auth::Auth::None),
        Some(a) => validate_auth(cx, a, version, advert_interval),
    };
    let election = election(cx, raw, &mut facts);

    let config = (|| {
        if !ok || !addresses_ok {
            return None;
        }
        Some(InstanceConfig {
            name: name?,
            interface: interface?,
            vrid: vrid?,
            priority: priority?,
            version: version?,
            version_chosen: raw.version.is_some(),
            advert_interval: advert_interval?,
            preempt,
            preempt_delay: preempt_delay?,
            addresses,
            unicast_peers: unicast_peers?,
            checksum: checksum?,
            announce: announce?,
            address_lifetime: address_lifetime?,
            witness: witness?,
            track_interfaces,
            vmac,
            vmac_interface,
            checks,
            notify: notify?,
            track_files,
            auth: auth?,
            election: election?,
        })
    })();
    (config, facts)
}

/// `name`: required, a simple name (the cross-instance rules check it is unique).
fn name(
    cx: &mut Cx<'_>,
    raw: &RawInstance,
    table: &Range<usize>,
    facts: &mut Facts,
) -> Option<String> {
    match &raw.name {
        None => {
            cx.missing(
                table.clone(),
                "name",
                "[[instance]]",
                "name = \"files\" (shown in logs and status)",
            );
            None
        }
        Some(n) if !is_valid_name(n.get_ref()) => {
            cx.at(
                n.span(),
                format!("instance name \"{}\" is not a valid name", n.get_ref()),
                "use 1-32 characters from a-z, 0-9, _ and -, e.g. name = \"files\"",
            );
            None
        }
        Some(n) => {
            facts.name = Some(n.clone());
            Some(n.get_ref().clone())
        }
    }
}

/// `interface`: required, a Linux interface name.
fn interface(
    cx: &mut Cx<'_>,
    raw: &RawInstance,
    table: &Range<usize>,
    label: &str,
    facts: &mut Facts,
) -> Option<String> {
    match &raw.interface {
        None => {
            cx.missing(
                table.clone(),
                "interface",
                &format!("instance {label}"),
                "interface = \"eth0\" (the LAN the VIP lives on)",
            );
            None
        }
        Some(i) if !is_valid_ifname(i.get_ref()) => {
            cx.at(
                i.span(),
                format!("interface \"{}\" is not a valid Linux interface name", i.get_ref()),
                "an interface name is 1-15 characters without '/', ':' or spaces; `ip link` lists them",
            );
            None
        }
        Some(i) => {
            facts.interface = Some(i.get_ref().clone());
            Some(i.get_ref().clone())
        }
    }
}

/// `vrid`: required, 1-255.
fn vrid(
    cx: &mut Cx<'_>,
    raw: &RawInstance,
    table: &Range<usize>,
    label: &str,
    facts: &mut Facts,
) -> Option<u8> {
    let vrid = match &raw.vrid {
        None => {
            cx.missing(
                table.clone(),
                "vrid",
                &format!("instance {label}"),
                "vrid = 51 (1-255, the same on every router of this instance)",
            );
            None
        }
        Some(v) => cx
            .int_in(
                v,
                "vrid",
                1..=255,
                "a VRID is 1-255 and must be the same on every router of this instance",
            )
            .map(|v| v as u8),
    };
    if let (Some(v), Some(span)) = (vrid, raw.vrid.as_ref().map(|v| v.span())) {
        facts.vrid = Some((v, span));
    }
    vrid
}

/// `priority`: 1-255, not 0 (a leaving master's).
fn priority(cx: &mut Cx<'_>, raw: &RawInstance) -> Option<u8> {
    match &raw.priority {
        None => Some(DEFAULT_PRIORITY),
        Some(p) if *p.get_ref() == 0 => {
            cx.at(
                p.span(),
                "priority 0 is reserved",
                "priority 0 is what a master sends when it leaves; use 1-254 (higher wins), or 255 if this host owns the address",
            );
            None
        }
        Some(p) => cx
            .int_in(p, "priority", 1..=255, "priority is 1-254 (higher wins the election); 255 means this host owns the address and claims it at once")
            .map(|p| p as u8),
    }
}

/// `version`: 3 (the default) or 2.
fn version(cx: &mut Cx<'_>, raw: &RawInstance) -> Option<vrrp::Version> {
    match &raw.version {
        None => Some(vrrp::Version::V3),
        Some(v) => match *v.get_ref() {
            3 => Some(vrrp::Version::V3),
            2 => Some(vrrp::Version::V2),
            other => {
                cx.at(
                    v.span(),
                    format!("version {other} is not a VRRP version floatip speaks"),
                    "use version = 3 (the default; IPv4 and IPv6, sub-second adverts) or version = 2 (IPv4, whole seconds; keepalived's IPv4 default)",
                );
                None
            }
        },
    }
}

/// `advert_interval`: what the version can carry (v3 centiseconds, v2 whole seconds).
fn advert_interval(
    cx: &mut Cx<'_>,
    raw: &RawInstance,
    version: Option<vrrp::Version>,
) -> Option<Duration> {
    match &raw.advert_interval {
        None => Some(DEFAULT_ADVERT_INTERVAL),
        Some(v) => cx.any_duration_where(v, "advert_interval", &|d| advert_interval_fits(d, version)).and_then(|d| {
            let problem = match version {
                Some(vrrp::Version::V3) | None => {
                    if d < Duration::from_millis(10) || d > Duration::from_millis(40_950) {
                        Some(("is outside VRRPv3's 10ms to 40.95s", "VRRPv3 carries the interval in centiseconds (12 bits): use 10ms to 40.95s"))
                    } else if d.as_nanos() % 10_000_000 != 0 {
                        Some(("is not a multiple of 10ms", "VRRPv3 carries the interval in centiseconds: round it to 10 ms steps, e.g. \"10ms\", \"20ms\", \"1s\""))
                    } else {
                        None
                    }
                }
                Some(vrrp::Version::V2) => {
                    if d.subsec_nanos() != 0 || d.is_zero() || d.as_secs() > 255 {
                        Some(("is not whole seconds from 1s to 255s, as VRRPv2 needs", "VRRPv2 carries the interval in whole seconds (1s to 255s); for sub-second adverts use version = 3 (keepalived: vrrp_version 3)"))
                    } else {
                        None
                    }
                }
            };
            match problem {
                Some((what, hint)) => {
                    cx.at(v.span(), format!("advert_interval {} {what}", format_duration(d)), hint);
                    None
                }
                None => Some(d),
            }
        }),
    }
}

/// Whether `version` carries `d` as an advert interval (v3: 10 ms steps up to 40.95 s; v2: 1 to 255
/// whole seconds).
fn advert_interval_fits(d: Duration, version: Option<vrrp::Version>) -> bool {
    match version {
        Some(vrrp::Version::V3) | None => {
            d >= Duration::from_millis(10)
                && d <= Duration::from_millis(40_950)
                && d.as_nanos() % 10_000_000 == 0
        }
        Some(vrrp::Version::V2) => d.subsec_nanos() == 0 && !d.is_zero() && d.as_secs() <= 255,
    }
}

/// `checksum`: a mode, and only where there is a choice (VRRPv3 over IPv4).
fn checksum(
    cx: &mut Cx<'_>,
    raw: &RawInstance,
    version: Option<vrrp::Version>,
    is_v6: Option<bool>,
    ok: &mut bool,
) -> Option<vrrp::ChecksumMode> {
    match &raw.checksum {
        None => Some(vrrp::ChecksumMode::PseudoHeader),
        Some(c) => {
            let mode = match c.get_ref().as_str() {
                "pseudo-header" => Some(vrrp::ChecksumMode::PseudoHeader),
                "message-only" => Some(vrrp::ChecksumMode::MessageOnly),
                "accept-either" => Some(vrrp::ChecksumMode::AcceptEither),
                other => {
                    cx.at(
                        c.span(),
                        format!("checksum \"{other}\" is not a checksum mode"),
                        "use \"pseudo-header\" (default; keepalived 2.2, Wireshark), \"message-only\" (RFC 9568) or \"accept-either\"",
                    );
                    None
                }
            };
            if mode.is_some() && (version == Some(vrrp::Version::V2) || is_v6 == Some(true)) {
                cx.at(
                    c.span(),
                    "checksum only applies to VRRPv3 over IPv4",
                    "VRRPv2 has no pseudo-header and IPv6 always uses one; remove the key",
                );
                *ok = false;
            }
            mode
        }
    }
}

/// `address_lifetime`: whole seconds, long enough for the advert interval; derived when unset.
fn address_lifetime(
    cx: &mut Cx<'_>,
    raw: &RawInstance,
    advert_interval: Option<Duration>,
) -> Option<Duration> {
    match (&raw.address_lifetime, advert_interval) {
        (None, Some(interval)) => Some(default_address_lifetime(interval)),
        (None, None) => None,
        (Some(v), interval) => cx.any_duration(v, "address_lifetime").and_then(|d| {
            if d.subsec_nanos() != 0 || d.is_zero() || d > MAX_ADDRESS_LIFETIME {
                cx.at(
                    v.span(),
                    format!("address_lifetime {} is not whole seconds from 1s to 1h", format_duration(d)),
                    "the kernel keeps address lifetimes in whole seconds; remove the key to use the default (2s at 1s adverts)",
                );
                return None;
            }
            if let Some(interval) = interval {
                if d < interval + LIFETIME_MARGIN {
                    cx.at(
                        v.span(),
                        format!(
                            "address_lifetime {} is too short for advert_interval {}",
                            format_duration(d),
                            format_duration(interval)
                        ),
                        format!(
                            "the master refreshes the lifetime once per advert, so it must be at least advert_interval + 0.5s: use \"{}\" or remove the key",
                            format_duration(default_address_lifetime(interval))
                        ),
                    );
                    return None;
                }
            }
            Some(d)
        }),
    }
}

/// `track_interfaces`: valid names, not the instance's own interface, each once.
fn track_interfaces(
    cx: &mut Cx<'_>,
    raw: &RawInstance,
    interface: Option<&String>,
    ok: &mut bool,
) -> Vec<String> {
    let mut track_interfaces = Vec::new();
    if let Some(list) = &raw.track_interfaces {
        let mut seen = HashSet::new();
        for item in list.get_ref() {
            let ifname = item.get_ref();
            if !is_valid_ifname(ifname) {
                cx.at(
                    item.span(),
                    format!("track_interfaces: \"{ifname}\" is not a valid Linux interface name"),
                    "an interface name is 1-15 characters without '/', ':' or spaces; `ip link` lists them",
                );
                *ok = false;
            } else if Some(ifname) == interface {
                cx.at(
                    item.span(),
                    format!("track_interfaces lists {ifname}, the instance's own interface"),
                    "the instance's own interface is always tracked; list only other links (e.g. the uplink)",
                );
                *ok = false;
            } else if !seen.insert(ifname.clone()) {
                cx.at(
                    item.span(),
                    format!("track_interfaces lists {ifname} twice"),
                    "list each interface once",
                );
                *ok = false;
            } else {
                track_interfaces.push(ifname.clone());
            }
        }
    }
    track_interfaces
}

/// The `[[instance.check]]` tables, each name once.
fn checks(cx: &mut Cx<'_>, raw: &RawInstance, label: &str, ok: &mut bool) -> Vec<CheckConfig> {
    let mut checks = Vec::new();
    let mut check_names: HashSet<String> = HashSet::new();
    for check in &raw.check {
        match validate_check(cx, check, label) {
            Some(c) => {
                if !check_names.insert(c.name.clone()) {
                    let span = check
                        .get_ref()
                        .name
                        .as_ref()
                        .map_or(check.span(), |n| n.span());
                    cx.at(
                        span,
                        format!("instance {label} has two checks named \"{}\"", c.name),
                        "give each check of an instance its own name (status and logs show it)",
                    );
                    *ok = false;
                } else {
                    checks.push(c);
                }
            }
            None => *ok = false,
        }
    }
    checks
}

/// `election`: `"vrrp"` (default) or `"etcd"`; the rules that need `[etcd]` and `[[group]]` are in
/// [`super::etcd`].
fn election(cx: &mut Cx<'_>, raw: &RawInstance, facts: &mut Facts) -> Option<Election> {
    let Some(e) = &raw.election else {
        return Some(Election::Vrrp);
    };
    match e.get_ref().as_str() {
        "vrrp" => Some(Election::Vrrp),
        "etcd" => {
            facts.etcd = Some(e.span());
            etcd_refuses_vrrp_only_keys(cx, raw).then_some(Election::Etcd)
        }
        other => {
            cx.at(
                e.span(),
                format!("election \"{other}\" is not known"),
                "write election = \"vrrp\" (the default: VRRP on the LAN) or election = \"etcd\" (a lease in etcd; needs an [etcd] table)",
            );
            None
        }
    }
}

/// Keys an etcd instance would ignore (it sends no adverts, adds its VIPs on `interface` itself and
/// takes its priority from `priority` and the checks): refused rather than silently dropped.
fn etcd_refuses_vrrp_only_keys(cx: &mut Cx<'_>, raw: &RawInstance) -> bool {
    let mut ok = true;
    let mut refuse = |span: Range<usize>, key: &str, hint: &str| {
        cx.at(
            span,
            format!("{key} does not apply to election = \"etcd\""),
            hint.to_string(),
        );
        ok = false;
    };
    if let Some(v) = raw.vmac.as_ref().filter(|v| *v.get_ref()) {
        refuse(
            v.span(),
            "vmac",
            "remove vmac (an etcd instance adds its VIPs on `interface`), or use election = \"vrrp\"",
        );
    }
    if let Some(a) = &raw.auth {
        refuse(
            a.span(),
            "[instance.auth]",
            "remove [instance.auth]: an etcd instance sends no adverts (secure etcd itself with https:// endpoints and client certificates)",
        );
    }
    if let Some(w) = raw.witness.as_ref().filter(|w| !w.get_ref().is_empty()) {
        refuse(
            w.span(),
            "witness",
            "remove witness: etcd's quorum already keeps a cut-off host from claiming (a witness guards VRRP's claims)",
        );
    }
    if let Some(t) = raw.track_file.first() {
        refuse(
            t.span(),
            "[[instance.track_file]]",
            "use an [[instance.check]] with kind = \"exec\" and a weight (etcd instances take their priority from the checks), or use election = \"vrrp\"",
        );
    }
    ok
}
