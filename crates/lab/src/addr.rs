//! The only addresses a lab may use: 192.0.2.0/24 (TEST-NET-1, RFC 5737) and 2001:db8::/64
//! (documentation prefix, RFC 3849). Everything else is refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{bail, Context, Result};

/// Whether `ip` is one the lab may use: a host address in 192.0.2.0/24 (not .0 or .255) or in
/// 2001:db8::/64 (not the all-zero interface id).
pub fn is_lab_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            o[..3] == [192, 0, 2] && o[3] != 0 && o[3] != 255
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            s[..4] == [0x2001, 0x0db8, 0, 0] && s[4..] != [0, 0, 0, 0]
        }
    }
}

fn refuse(what: &str) -> String {
    format!(
        "{what}: the lab only uses 192.0.2.0/24 (host part 1-254, prefix /24-/32) and \
         2001:db8::/64 (prefix /64-/128)"
    )
}

/// Parses "192.0.2.N/LEN" (LEN 24-32) or, when `default_len` is given, a bare "192.0.2.N".
pub fn parse_lab_v4(cidr: &str, default_len: Option<u8>) -> Result<(Ipv4Addr, u8)> {
    let (ip, len) = split(cidr, default_len)?;
    let ip: Ipv4Addr = ip
        .parse()
        .with_context(|| format!("`{cidr}` is not an IPv4 address"))?;
    if !is_lab_address(IpAddr::V4(ip)) || !(24..=32).contains(&len) {
        bail!(refuse(&format!("refusing `{cidr}`")));
    }
    Ok((ip, len))
}

/// Parses "2001:db8::N/LEN" (LEN 64-128) or, when `default_len` is given, a bare address.
pub fn parse_lab_v6(cidr: &str, default_len: Option<u8>) -> Result<(Ipv6Addr, u8)> {
    let (ip, len) = split(cidr, default_len)?;
    let ip: Ipv6Addr = ip
        .parse()
        .with_context(|| format!("`{cidr}` is not an IPv6 address"))?;
    if !is_lab_address(IpAddr::V6(ip)) || !(64..=128).contains(&len) {
        bail!(refuse(&format!("refusing `{cidr}`")));
    }
    Ok((ip, len))
}

/// Parses a lab address of either family, "ADDR/LEN" or bare "ADDR" (then /32 or /128).
pub fn parse_lab_cidr(cidr: &str) -> Result<(IpAddr, u8)> {
    if cidr.contains(':') {
        parse_lab_v6(cidr, Some(128)).map(|(a, l)| (IpAddr::V6(a), l))
    } else {
        parse_lab_v4(cidr, Some(32)).map(|(a, l)| (IpAddr::V4(a), l))
    }
}

/// Parses a bare lab address (a prefix length is tolerated and ignored).
pub fn parse_lab_ip(addr: &str) -> Result<IpAddr> {
    parse_lab_cidr(addr).map(|(a, _)| a)
}

fn split(cidr: &str, default_len: Option<u8>) -> Result<(&str, u8)> {
    match cidr.split_once('/') {
        Some((ip, len)) => {
            let len: u8 = len
                .parse()
                .with_context(|| format!("`{cidr}`: bad prefix length"))?;
            Ok((ip, len))
        }
        None => match default_len {
            Some(l) => Ok((cidr, l)),
            None => bail!("`{cidr}`: give a prefix length, e.g. 192.0.2.1/24 or 2001:db8::1/64"),
        },
    }
}

/// Parses "aa:bb:cc:dd:ee:ff".
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Formats a MAC as "aa:bb:cc:dd:ee:ff".
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_documentation_ranges() {
        assert!(parse_lab_v4("192.0.2.1/24", None).is_ok());
        assert!(parse_lab_v4("192.0.2.97/32", None).is_ok());
        assert!(parse_lab_v4("192.0.2.1", None).is_err());
        assert!(parse_lab_v4("192.0.2.0/24", None).is_err());
        assert!(parse_lab_v4("192.0.2.255/24", None).is_err());
        assert!(parse_lab_v4("192.0.2.1/16", None).is_err());
        assert!(parse_lab_v4("10.0.0.1/24", None).is_err());
        assert!(parse_lab_v4("192.168.1.1/24", None).is_err());
        assert!(parse_lab_v4("198.51.100.1/24", None).is_err());
        assert!(parse_lab_v6("2001:db8::1/64", None).is_ok());
        assert!(parse_lab_v6("2001:db8::/64", None).is_err());
        assert!(parse_lab_v6("2001:db8:1::1/64", None).is_err());
        assert!(parse_lab_v6("2001:db8::1/48", None).is_err());
        assert!(parse_lab_v6("fe80::1/64", None).is_err());
        assert!(parse_lab_v6("fd00::1/64", None).is_err());
        assert_eq!(
            parse_lab_cidr("192.0.2.97").unwrap(),
            ("192.0.2.97".parse().unwrap(), 32)
        );
        assert_eq!(
            parse_lab_ip("2001:db8::61/64").unwrap().to_string(),
            "2001:db8::61"
        );
    }

    #[test]
    fn mac_roundtrip() {
        let m = parse_mac("02:00:00:00:00:0a").unwrap();
        assert_eq!(m, [2, 0, 0, 0, 0, 10]);
        assert_eq!(format_mac(&m), "02:00:00:00:00:0a");
        assert!(parse_mac("02:00:00:00:00").is_none());
        assert!(parse_mac("02:00:00:00:00:00:00").is_none());
    }
}
