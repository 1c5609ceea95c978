//! The address lists of an `[[instance]]`: its VIPs (`addresses`), and the plain addresses of its family
//! (`unicast_peers`, `witness`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;

use toml::Spanned;

use super::Facts;
use crate::config::error::Cx;
use crate::config::model::{parse_vip, Vip};
use crate::config::raw::RawInstance;

/// VRRPv3 over IPv6 in one 1500-byte packet: (1500 - 40 IPv6 - 8 VRRP header) / 16.
const MAX_V6_ADDRESSES: usize = 90;
/// The advert's address count is one byte.
const MAX_ADDRESSES: usize = 255;

/// `addresses`: required, one family, each once, as many as one advert carries. Returns the VIPs that are
/// valid (the peer and witness rules compare against them) and whether all were.
pub(super) fn addresses(
    cx: &mut Cx<'_>,
    raw: &RawInstance,
    table: &Range<usize>,
    label: &str,
    facts: &mut Facts,
) -> (Vec<Vip>, bool) {
    let mut addresses = Vec::new();
    let mut addresses_ok = true;
    let mut family: Option<(bool, String)> = None;
    match &raw.addresses {
        None => {
            cx.missing(
                table.clone(),
                "addresses",
                &format!("instance {label}"),
                "addresses = [\"192.0.2.97/24\"] (the VIPs this instance moves)",
            );
            addresses_ok = false;
        }
        Some(list) if list.get_ref().is_empty() => {
            cx.at(
                list.span(),
                "addresses is empty",
                "list the VIPs this instance moves, e.g. addresses = [\"192.0.2.97/24\"]",
            );
            addresses_ok = false;
        }
        Some(list) => {
            let mut seen: HashMap<IpAddr, String> = HashMap::new();
            for item in list.get_ref() {
                let vip = match parse_vip(item.get_ref()) {
                    Ok(vip) => vip,
                    Err((what, hint)) => {
                        cx.at(item.span(), what, hint);
                        addresses_ok = false;
                        continue;
                    }
                };
                if let Some((first_v6, first)) = &family {
                    if *first_v6 != vip.addr.is_ipv6() {
                        cx.at(
                            item.span(),
                            format!("{vip} mixes address families with {first} in one instance"),
                            format!(
                                "VRRP runs separately per family: put the IPv{} addresses in a second [[instance]] (it may use the same vrid)",
                                if vip.addr.is_ipv6() { 6 } else { 4 }
                            ),
                        );
                        addresses_ok = false;
                        continue;
                    }
                } else {
                    family = Some((vip.addr.is_ipv6(), vip.to_string()));
                }
                if let Some(first) = seen.get(&vip.addr) {
                    cx.at(
                        item.span(),
                        format!("{} is listed twice (as {first} and {vip})", vip.addr),
                        "list each address once",
                    );
                    addresses_ok = false;
                    continue;
                }
                seen.insert(vip.addr, vip.to_string());
                facts.vips.push((vip, item.span()));
                addresses.push(vip);
            }
            let max = if family.as_ref().is_some_and(|f| f.0) {
                MAX_V6_ADDRESSES
            } else {
                MAX_ADDRESSES
            };
            if list.get_ref().len() > max {
                cx.at(
                    list.span(),
                    format!(
                        "{} addresses do not fit in one advert (at most {max})",
                        list.get_ref().len()
                    ),
                    "split them over several instances with different vrids",
                );
                addresses_ok = false;
            }
        }
    }
    facts.is_v6 = family.as_ref().map(|f| f.0);
    (addresses, addresses_ok)
}

pub(super) fn validate_addr_list(
    cx: &mut Cx<'_>,
    list: Option<&Spanned<Vec<Spanned<String>>>>,
    key: &str,
    is_v6: Option<bool>,
    vips: &[Vip],
    example: &str,
) -> Option<Vec<IpAddr>> {
    let Some(list) = list else {
        return Some(Vec::new());
    };
    let mut ok = true;
    let mut out = Vec::new();
    for item in list.get_ref() {
        let s = item.get_ref();
        let addr = match s.parse::<IpAddr>() {
            Ok(a) => a,
            Err(_) => {
                let hint = if s.contains('/') {
                    format!("{key} takes plain addresses without /LEN: {example}")
                } else {
                    format!("{key} takes IP addresses (no host names): {example}")
                };
                cx.at(
                    item.span(),
                    format!("{key}: \"{s}\" is not an IP address"),
                    hint,
                );
                ok = false;
                continue;
            }
        };
        if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
            cx.at(
                item.span(),
                format!("{key}: {addr} is not a host on the LAN"),
                format!("{key} takes {example}"),
            );
            ok = false;
        } else if is_v6.is_some_and(|v6| v6 != addr.is_ipv6()) {
            cx.at(
                item.span(),
                format!(
                    "{key}: {addr} is IPv{} but the instance's addresses are IPv{}",
                    if addr.is_ipv6() { 6 } else { 4 },
                    if addr.is_ipv6() { 4 } else { 6 }
                ),
                format!("{key} must be of the same family as addresses; a dual-stack setup is two instances"),
            );
            ok = false;
        } else if vips.iter().any(|v| v.addr == addr) {
            cx.at(
                item.span(),
                format!("{key}: {addr} is one of this instance's own VIPs"),
                format!("{key} takes {example}"),
            );
            ok = false;
        } else if out.contains(&addr) {
            cx.at(
                item.span(),
                format!("{key} lists {addr} twice"),
                "list each address once",
            );
            ok = false;
        } else {
            out.push(addr);
        }
    }
    ok.then_some(out)
}
