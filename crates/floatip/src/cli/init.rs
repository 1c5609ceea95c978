//! `floatip init --vip ADDR/LEN`: a commented configuration for this host, from what the LAN says
//! today. It picks the interface whose subnet holds the VIP (netlink), listens there a few seconds for
//! VRRP adverts and picks a VRID nobody uses (saying which it heard, from whom), probes the VIP with
//! ARP / duplicate-address detection and refuses (naming the MAC) when someone answers, sets the
//! priority (`--primary` 150, `--secondary` 100), proposes unicast with `--peer`, and prints the
//! command that writes the mirror configuration on the other host. It never overwrites a file without
//! `--force`. It only listens and probes (RFC 5227 probes change nobody's cache): it is no daemon.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::doctor::wire::{listen, Heard};
use super::manual::{hosts_with_mac, parse_cidr};
use crate::config::{self, Vip};
use crate::control::format_mac;
use crate::net::netlink::Netlink;
use crate::net::probe;

pub const PRIMARY_PRIORITY: u8 = 150;
pub const SECONDARY_PRIORITY: u8 = 100;
/// The first VRID tried (the one the docs use), then upwards, then from 1.
const FIRST_VRID: u8 = 51;

/// The command's arguments.
#[derive(Debug, Clone)]
pub struct InitArgs {
    pub vip: String,
    pub peer: Option<IpAddr>,
    pub name: String,
    pub secondary: bool,
    pub output: PathBuf,
    pub force: bool,
    pub listen: Duration,
    pub vrid: Option<u8>,
}

/// One VRRP speaker heard: its source, VRID and advertised addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Speaker {
    pub src: IpAddr,
    pub vrid: u8,
    pub addresses: BTreeSet<IpAddr>,
}

/// The VRID to use and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VridChoice {
    pub vrid: u8,
    /// Another host already speaks this VRID for exactly our VIP (the other half of the pair).
    pub pair_heard: Option<IpAddr>,
    pub why: String,
}

/// Chooses the VRID: `wanted` if nobody else uses it; else the first free one from 51. A speaker
/// for exactly our VIP is the other half of our pair (its VRID is adopted); one that carries our VIP
/// with other addresses, or uses `wanted` for other addresses, is an error that names it.
pub fn choose_vrid(
    heard: &[Speaker],
    vip: IpAddr,
    wanted: Option<u8>,
) -> Result<VridChoice, String> {
    let ours: BTreeSet<IpAddr> = [vip].into_iter().collect();
    let used: BTreeSet<u8> = heard.iter().map(|s| s.vrid).collect();
    if let Some(s) = heard
        .iter()
        .find(|s| s.addresses.contains(&vip) && s.addresses != ours)
    {
        return Err(format!(
            "{} already advertises {vip} on VRID {} together with {}: an existing VRRP setup (keepalived?) \
             serves this address; import its configuration with `floatip import keepalived` instead",
            s.src,
            s.vrid,
            list(&s.addresses)
        ));
    }
    let pair = heard.iter().find(|s| s.addresses == ours);
    match (wanted, pair) {
        (Some(w), _) => {
            if let Some(s) = heard.iter().find(|s| s.vrid == w && s.addresses != ours) {
                return Err(format!(
                    "VRID {w} is in use by {} for {}; pick another with --vrid, or leave --vrid out",
                    s.src,
                    list(&s.addresses)
                ));
            }
            let pair_heard = heard
                .iter()
                .find(|s| s.vrid == w && s.addresses == ours)
                .map(|s| s.src);
            let why = match pair_heard {
                Some(src) => format!(
                    "--vrid {w}; {src} already speaks it for {vip} (the other host of this pair)"
                ),
                None => format!("--vrid {w}; nobody else was heard on it"),
            };
            Ok(VridChoice {
                vrid: w,
                pair_heard,
                why,
            })
        }
        (None, Some(s)) => Ok(VridChoice {
            vrid: s.vrid,
            pair_heard: Some(s.src),
            why: format!(
                "{} already speaks VRID {} for {vip} (the other host of this pair)",
                s.src, s.vrid
            ),
        }),
        (None, None) => {
            let vrid = (FIRST_VRID..=255)
                .chain(1..FIRST_VRID)
                .find(|v| !used.contains(v))
                .ok_or("every VRID from 1 to 255 is in use on this LAN")?;
            Ok(VridChoice {
                vrid,
                pair_heard: None,
                why: format!("nobody was heard on VRID {vrid}"),
            })
        }
    }
}

fn list(set: &BTreeSet<IpAddr>) -> String {
    set.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// "heard VRID 51 from 192.0.2.9 (192.0.2.50), ..." or "heard no VRRP adverts".
pub fn heard_summary(heard: &[Speaker], listened: Duration) -> String {
    if heard.is_empty() {
        return format!("heard no VRRP adverts in {listened:?}");
    }
    let parts: Vec<String> = heard
        .iter()
        .map(|s| format!("VRID {} from {} ({})", s.vrid, s.src, list(&s.addresses)))
        .collect();
    format!("heard in {listened:?}: {}", parts.join("; "))
}

/// What the configuration says; everything [`render`] needs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub interface: String,
    /// This host's own address on `interface` in the VIP's subnet (the peer's `--peer`).
    pub own: IpAddr,
    pub vip: Vip,
    pub vrid: VridChoice,
    pub heard: String,
    /// Where the file goes (`--output`).
    pub output: std::path::PathBuf,
    /// The other host of the pair (`vrid.pair_heard`) speaks VRRPv2: so does this one.
    pub pair_v2: bool,
    pub secondary: bool,
    pub peer: Option<IpAddr>,
}

/// The command that writes the other host's configuration.
pub fn mirror_command(plan: &Plan) -> String {
    let mut cmd = format!(
        "floatip init --vip {} --name {} --vrid {} {}",
        plan.vip,
        plan.name,
        plan.vrid.vrid,
        if plan.secondary {
            "--primary"
        } else {
            "--secondary"
        }
    );
    if plan.peer.is_some() {
        let _ = write!(cmd, " --peer {}", plan.own);
    }
    cmd
}

/// The configuration text, commented in the style of examples/floatip.toml.
pub fn render(plan: &Plan) -> String {
    let (priority, role, other) = if plan.secondary {
        (
            SECONDARY_PRIORITY,
            "the secondary: it takes the address when the primary fails",
            PRIMARY_PRIORITY,
        )
    } else {
        (
            PRIMARY_PRIORITY,
            "the primary: it holds the address while it is healthy",
            SECONDARY_PRIORITY,
        )
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# floatip configuration written by `floatip init` for the service address {}.",
        plan.vip
    );
    let _ = writeln!(s, "# On the other host, run:   {}", mirror_command(plan));
    let _ = writeln!(
        s,
        "# Check it without touching the network:   floatip check --config {}",
        plan.output.display()
    );
    s.push_str("# Then start floatip on both hosts (`systemctl enable --now floatip`, or `floatip run`).\n");
    s.push_str(
        "# Every key, and the optional ones (checks, hooks, announcements): docs/config.md.\n\n",
    );
    s.push_str("[[instance]]\n");
    s.push_str("# Shown in logs and status, used by commands: `floatip takeover NAME`.\n");
    let _ = writeln!(s, "name = {}", toml_str(&plan.name));
    let _ = writeln!(
        s,
        "# The interface whose subnet holds {} (this host is {} there).",
        plan.vip.addr, plan.own
    );
    let _ = writeln!(s, "interface = {}", toml_str(&plan.interface));
    let _ = writeln!(
        s,
        "# The same on both hosts, unique among VRRP routers on this LAN: {}.",
        plan.vrid.why
    );
    let _ = writeln!(s, "# While writing this file floatip {}.", plan.heard);
    let _ = writeln!(s, "vrid = {}", plan.vrid.vrid);
    let _ = writeln!(s, "# This host is {role} (the other host: {other}).");
    let _ = writeln!(s, "priority = {priority}");
    if let (true, Some(other)) = (plan.pair_v2, plan.vrid.pair_heard) {
        let _ = writeln!(
            s,
            "# The other host ({other}) speaks VRRPv2, keepalived's default for IPv4: so does this one."
        );
        s.push_str("version = 2\n");
    }
    s.push_str("# The service address, with its subnet's prefix length.\n");
    let _ = writeln!(s, "addresses = [{}]", toml_str(&plan.vip.to_string()));
    match plan.peer {
        Some(peer) => {
            s.push_str(
                "# Adverts go straight to the other host (for networks that drop multicast).\n",
            );
            let _ = writeln!(s, "unicast_peers = [{}]", toml_str(&peer.to_string()));
        }
        None => {
            s.push_str("# Adverts go to the multicast group; for networks that drop multicast, list the other host:\n");
            s.push_str("# unicast_peers = [\"OTHER-HOST-ADDRESS\"]\n");
        }
    }
    s.push_str("# A backup takes over after about 3 x advert_interval without adverts.\n");
    s.push_str("# advert_interval = \"1s\"\n");
    s
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Whether `vip` lies in `addr/len`'s subnet.
pub fn in_subnet(addr: IpAddr, len: u8, vip: IpAddr) -> bool {
    match (addr, vip) {
        (IpAddr::V4(a), IpAddr::V4(v)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            u32::from(a) & mask == u32::from(v) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(v)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            u128::from(a) & mask == u128::from(v) & mask
        }
        _ => false,
    }
}

/// The command: returns the exit status (0 written; 1 refused, with the reason on stderr).
pub async fn run(args: InitArgs) -> Result<ExitCode> {
    let (addr, len) = parse_cidr(&args.vip)?;
    let vip: Vip = args
        .vip
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--vip {e}"))?;
    if args.output.exists() && !args.force {
        bail!(
            "{} exists; not overwriting it (pass --force to replace it)",
            args.output.display()
        );
    }
    if args.vrid == Some(0) {
        bail!("--vrid must be 1-255");
    }
    let netlink = Netlink::new().context("cannot open netlink (needs CAP_NET_ADMIN)")?;
    let mut found = None;
    let mut seen = Vec::new();
    let mut vip_here = None;
    for iface in nix::net::if_::if_nameindex()
        .context("cannot list the interfaces")?
        .iter()
    {
        let name = iface.name().to_string_lossy().into_owned();
        let index = iface.index();
        for (a, l) in netlink.addresses(index).await? {
            if a == addr {
                vip_here = Some(name.clone());
                continue;
            }
            if a.is_ipv4() == addr.is_ipv4() && !a.is_loopback() {
                seen.push(format!("{name}: {a}/{l}"));
            }
            if found.is_none() && in_subnet(a, l, addr) && !a.is_loopback() {
                found = Some((name.clone(), index, a));
            }
        }
    }
    let Some((ifname, index, own)) = found else {
        bail!(
            "no interface of this host has an address in {addr}/{len}'s subnet (this host has: {}); \
             the VIP must be in the subnet of the LAN it moves on",
            if seen.is_empty() { "no addresses of that family".to_string() } else { seen.join(", ") }
        );
    };
    let link = netlink.link_by_name(&ifname).await?;
    if !link.up {
        bail!("{ifname} is down: nothing can be heard or probed there; bring it up first");
    }
    if let Some(dev) = &vip_here {
        println!("note: {addr} is on {dev} of this host now (added by hand?); floatip takes it over when it starts");
    }
    println!("interface {ifname} ({own}/{len} is in the subnet of {addr}); listening {:?} for VRRP adverts...", args.listen);
    let heard = listen(&ifname, index, addr.is_ipv6(), args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for VRRP on {ifname}: {e}"))?;
    let speakers = speakers(&heard);
    let summary = heard_summary(&speakers, args.listen);
    println!("{summary}");
    let choice = match choose_vrid(&speakers, addr, args.vrid) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("floatip: {e}; nothing written");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!("VRID {}: {}", choice.vrid, choice.why);
    let answered = match addr {
        IpAddr::V4(a) => {
            probe::arp_probe(
                link.index,
                link.mac,
                a,
                3,
                Duration::from_millis(200),
                Duration::from_secs(1),
            )
            .await
        }
        IpAddr::V6(a) => {
            probe::ndp_probe(
                link.index,
                link.mac,
                a,
                3,
                Duration::from_millis(200),
                Duration::from_secs(1),
            )
            .await
        }
    }
    .with_context(|| {
        format!("cannot probe whether {addr} is in use on {ifname} (needs CAP_NET_RAW)")
    })?;
    match (answered, choice.pair_heard) {
        (Some(mac), Some(src)) => println!(
            "{addr} is answered by {} : expected, {src} is the other host of this pair on VRID {}",
            format_mac(&mac),
            choice.vrid
        ),
        (Some(mac), None) => {
            let arp = std::fs::read_to_string("/proc/thread-self/net/arp").unwrap_or_default();
            let hosts: Vec<String> = hosts_with_mac(&arp, &mac, addr)
                .iter()
                .map(|h| h.to_string())
                .collect();
            let who = if hosts.is_empty() {
                String::new()
            } else {
                format!(" (host {})", hosts.join(", "))
            };
            eprintln!(
                "floatip: {addr} is answered by {}{who} today: another host uses it. Take it off that host \
                 (or pick another VIP) and run init again; nothing written",
                format_mac(&mac)
            );
            return Ok(ExitCode::FAILURE);
        }
        (None, _) => println!("nobody answers for {addr} (3 probes)"),
    }
    let pair_v2 = choice.pair_heard.is_some_and(|src| {
        heard.iter().any(|h| {
            h.src == src
                && h.advert
                    .as_ref()
                    .is_ok_and(|a| a.vrid == choice.vrid && a.version == vrrp::Version::V2)
        })
    });
    if pair_v2 {
        println!(
            "the other host speaks VRRPv2 (keepalived's default for IPv4): writing version = 2"
        );
    }
    let plan = Plan {
        name: args.name.clone(),
        interface: ifname,
        own,
        vip,
        vrid: choice,
        heard: summary,
        output: args.output.clone(),
        pair_v2,
        secondary: args.secondary,
        peer: args.peer,
    };
    let text = render(&plan);
    if let Err(e) = config::parse(&text, &args.output) {
        bail!("internal error: the generated configuration does not pass floatip check:\n{e}");
    }
    if let Some(dir) = args.output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if args.output.exists() && !args.force {
        bail!(
            "{} appeared meanwhile; not overwriting it (pass --force)",
            args.output.display()
        );
    }
    std::fs::write(&args.output, &text)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!("wrote {}", args.output.display());
    println!("on the other host, run:\n  {}", mirror_command(&plan));
    Ok(ExitCode::SUCCESS)
}

fn speakers(heard: &[Heard]) -> Vec<Speaker> {
    let mut out: Vec<Speaker> = Vec::new();
    for h in heard {
        let Ok(a) = &h.advert else { continue };
        let s = Speaker {
            src: h.src,
            vrid: a.vrid,
            addresses: a.addresses.iter().copied().collect(),
        };
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(src: &str, vrid: u8, addrs: &[&str]) -> Speaker {
        Speaker {
            src: src.parse().unwrap(),
            vrid,
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    const VIP: &str = "192.0.2.97";

    #[test]
    fn a_vrid_heard_on_the_wire_is_never_picked() {
        let vip: IpAddr = VIP.parse().unwrap();
        assert_eq!(choose_vrid(&[], vip, None).unwrap().vrid, 51);
        let heard = [
            sp("192.0.2.9", 51, &["192.0.2.50"]),
            sp("192.0.2.8", 52, &["192.0.2.51"]),
        ];
        assert_eq!(choose_vrid(&heard, vip, None).unwrap().vrid, 53);
        let all: Vec<Speaker> = (1..=255)
            .map(|v| sp("192.0.2.9", v, &["192.0.2.50"]))
            .collect();
        assert!(choose_vrid(&all, vip, None).is_err());
        let high: Vec<Speaker> = (51..=255)
            .map(|v| sp("192.0.2.9", v, &["192.0.2.50"]))
            .collect();
        assert_eq!(choose_vrid(&high, vip, None).unwrap().vrid, 1);
    }

    #[test]
    fn the_other_half_of_the_pair_is_recognised_and_strangers_refused() {
        let vip: IpAddr = VIP.parse().unwrap();
        let pair = [sp("192.0.2.1", 60, &[VIP])];
        let c = choose_vrid(&pair, vip, None).unwrap();
        assert_eq!(
            (c.vrid, c.pair_heard),
            (60, Some("192.0.2.1".parse().unwrap()))
        );
        assert_eq!(
            choose_vrid(&pair, vip, Some(60)).unwrap().pair_heard,
            Some("192.0.2.1".parse().unwrap())
        );
        let err = choose_vrid(&[sp("192.0.2.9", 51, &["192.0.2.50"])], vip, Some(51)).unwrap_err();
        assert!(err.contains("192.0.2.9"), "{err}");
        let err = choose_vrid(&[sp("192.0.2.9", 7, &[VIP, "192.0.2.98"])], vip, None).unwrap_err();
        assert!(err.contains("floatip import keepalived"), "{err}");
    }

    fn plan(secondary: bool, peer: Option<&str>) -> Plan {
        Plan {
            name: "files".into(),
            interface: "eth0".into(),
            own: "192.0.2.1".parse().unwrap(),
            vip: "192.0.2.97/24".parse().unwrap(),
            vrid: VridChoice {
                vrid: 51,
                pair_heard: None,
                why: "nobody was heard on VRID 51".into(),
            },
            heard: "heard no VRRP adverts in 3s".into(),
            output: "/etc/floatip/floatip.toml".into(),
            pair_v2: false,
            secondary,
            peer: peer.map(|p| p.parse().unwrap()),
        }
    }

    #[test]
    fn the_config_is_valid_and_the_mirror_command_swaps_the_role() {
        for (secondary, peer) in [(false, None), (true, Some("192.0.2.2"))] {
            let p = plan(secondary, peer);
            let cfg = config::parse(&render(&p), std::path::Path::new("f.toml")).unwrap();
            let inst = &cfg.instances[0];
            assert_eq!(inst.vrid, 51);
            assert_eq!(inst.priority, if secondary { 100 } else { 150 });
            assert_eq!(inst.unicast_peers.len(), usize::from(peer.is_some()));
            assert_eq!(
                (inst.version, inst.version_chosen),
                (vrrp::Version::V3, false)
            );
        }
        // Beside a VRRPv2 speaker (keepalived at its defaults) the file says version 2.
        let mut p = plan(true, None);
        p.vrid.pair_heard = Some("192.0.2.2".parse().unwrap());
        p.pair_v2 = true;
        let text = render(&p);
        assert!(text.contains("(192.0.2.2) speaks VRRPv2"), "{text}");
        assert!(
            text.contains("floatip check --config /etc/floatip/floatip.toml"),
            "the file names itself: {text}"
        );
        let cfg = config::parse(&text, std::path::Path::new("f.toml")).unwrap();
        assert_eq!(cfg.instances[0].version, vrrp::Version::V2);
        assert_eq!(
            mirror_command(&plan(false, None)),
            "floatip init --vip 192.0.2.97/24 --name files --vrid 51 --secondary"
        );
        assert_eq!(
            mirror_command(&plan(true, Some("192.0.2.2"))),
            "floatip init --vip 192.0.2.97/24 --name files --vrid 51 --primary --peer 192.0.2.1"
        );
    }

    #[test]
    fn subnets() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_subnet(a("192.0.2.1"), 24, a("192.0.2.97")));
        assert!(!in_subnet(a("192.0.2.1"), 25, a("192.0.2.197")));
        assert!(in_subnet(a("2001:db8::1"), 64, a("2001:db8::97")));
        assert!(!in_subnet(a("192.0.2.1"), 24, a("2001:db8::97")));
    }
}
