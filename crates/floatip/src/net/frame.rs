//! Ethernet frames for ARP and IPv6 neighbour discovery, built and parsed without any socket: the
//! gratuitous ARP and unsolicited Neighbour Advertisement [`super::announce`] sends, the ARP probes and
//! DAD solicitations [`super::probe`] sends, and the parsers its watch reads answers with.
//! IPv6 frames are complete (IPv6 header, hop limit 255, ICMPv6 checksum), so they go out even while
//! the kernel would refuse the VIP as a source address, and their checksum is ours to test.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
pub const ARPOP_REQUEST: u16 = 1;
pub const ARPOP_REPLY: u16 = 2;
pub const ND_NEIGHBOR_SOLICIT: u8 = 135;
pub const ND_NEIGHBOR_ADVERT: u8 = 136;
/// Ethernet frames shorter than this (without FCS) are padded.
const MIN_FRAME: usize = 60;

fn eth_header(out: &mut Vec<u8>, dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    out.extend_from_slice(&ethertype.to_be_bytes());
}

fn pad(mut v: Vec<u8>) -> Vec<u8> {
    if v.len() < MIN_FRAME {
        v.resize(MIN_FRAME, 0);
    }
    v
}

/// An Ethernet + ARP frame (Ethernet/IPv4 ARP), padded to the 60-byte minimum.
#[allow(clippy::too_many_arguments)]
pub fn arp_frame(
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    op: u16,
    sha: [u8; 6],
    spa: Ipv4Addr,
    tha: [u8; 6],
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(MIN_FRAME);
    eth_header(&mut f, eth_dst, eth_src, ETH_P_ARP);
    f.extend_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // protocol type: IPv4
    f.push(6);
    f.push(4);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa.octets());
    pad(f)
}

/// The gratuitous ARP floatip sends for `addr` (see the module documentation).
pub fn garp_frame(mac: [u8; 6], addr: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        BROADCAST_MAC,
        mac,
        ARPOP_REQUEST,
        mac,
        addr,
        BROADCAST_MAC,
        addr,
    )
}

/// The gratuitous ARP of a virtual MAC (RFC 5798 7.3): a broadcast *reply* for `addr` from `mac`.
/// The request form would be answered by the old master while it still holds the VIP during a
/// make-before-break handoff, from the same virtual MAC, teaching the switch the old master's port
/// again; nobody answers a reply.
pub fn garp_reply_frame(mac: [u8; 6], addr: Ipv4Addr) -> Vec<u8> {
    arp_frame(BROADCAST_MAC, mac, ARPOP_REPLY, mac, addr, mac, addr)
}

/// Whether `mac` is a VRRP virtual MAC (00:00:5e:00:01:{vrid} or 00:00:5e:00:02:{vrid}).
pub fn is_vrrp_virtual_mac(mac: [u8; 6]) -> bool {
    mac[..4] == [0, 0, 0x5e, 0] && (mac[4] == 1 || mac[4] == 2)
}

/// An RFC 5227 ARP probe: request, sender IP 0.0.0.0, target MAC zero, target IP `addr`.
pub fn arp_probe_frame(mac: [u8; 6], addr: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        BROADCAST_MAC,
        mac,
        ARPOP_REQUEST,
        mac,
        Ipv4Addr::UNSPECIFIED,
        [0; 6],
        addr,
    )
}

/// The Internet checksum (RFC 1071) of the ICMPv6 message `icmp` with its IPv6 pseudo-header.
/// `icmp`'s checksum field must be zero (or the result is 0 when verifying a correct message).
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += u64::from(w);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(icmp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The Ethernet multicast address of an IPv6 multicast group (33:33 + low 32 bits).
pub fn ipv6_multicast_mac(group: &Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The solicited-node multicast group of `addr` (ff02::1:ffXX:XXXX).
pub fn solicited_node(addr: &Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// An Ethernet + IPv6 (hop limit 255) + ICMPv6 frame; the ICMPv6 checksum is filled in.
pub fn icmpv6_frame(
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    mut icmp: Vec<u8>,
) -> Vec<u8> {
    icmp[2] = 0;
    icmp[3] = 0;
    let ck = icmpv6_checksum(&src, &dst, &icmp);
    icmp[2..4].copy_from_slice(&ck.to_be_bytes());
    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    eth_header(&mut f, eth_dst, eth_src, ETH_P_IPV6);
    f.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, traffic class 0, flow label 0
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.push(58); // next header: ICMPv6
    f.push(255); // hop limit: ND requires 255
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&icmp);
    pad(f)
}

/// NA flag bits (first byte after the checksum).
pub const NA_FLAG_ROUTER: u8 = 0x80;
pub const NA_FLAG_SOLICITED: u8 = 0x40;
pub const NA_FLAG_OVERRIDE: u8 = 0x20;

/// The unsolicited Neighbour Advertisement floatip sends for `addr` (see the module documentation).
pub fn unsolicited_na_frame(mac: [u8; 6], addr: Ipv6Addr) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut icmp = vec![ND_NEIGHBOR_ADVERT, 0, 0, 0, NA_FLAG_OVERRIDE, 0, 0, 0];
    icmp.extend_from_slice(&addr.octets());
    icmp.extend_from_slice(&[2, 1]); // option: Target Link-Layer Address, 8 bytes
    icmp.extend_from_slice(&mac);
    icmpv6_frame(ipv6_multicast_mac(&all_nodes), mac, addr, all_nodes, icmp)
}

/// A duplicate-address-detection Neighbour Solicitation for `addr`: from ::, to the solicited-node
/// group, no source link-layer option (RFC 4861 forbids it with an unspecified source).
pub fn dad_ns_frame(mac: [u8; 6], addr: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(&addr);
    let mut icmp = vec![ND_NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&addr.octets());
    icmpv6_frame(
        ipv6_multicast_mac(&group),
        mac,
        Ipv6Addr::UNSPECIFIED,
        group,
        icmp,
    )
}

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    pub op: u16,
    pub sha: [u8; 6],
    pub spa: Ipv4Addr,
    pub tha: [u8; 6],
    pub tpa: Ipv4Addr,
}

pub fn parse_arp(frame: &[u8]) -> Option<ArpPacket> {
    if frame.len() < 42 || u16::from_be_bytes([frame[12], frame[13]]) != ETH_P_ARP {
        return None;
    }
    let a = &frame[14..];
    if a[0..2] != [0, 1] || a[2..4] != [0x08, 0] || a[4] != 6 || a[5] != 4 {
        return None;
    }
    let mac = |b: &[u8]| -> [u8; 6] { [b[0], b[1], b[2], b[3], b[4], b[5]] };
    Some(ArpPacket {
        op: u16::from_be_bytes([a[6], a[7]]),
        sha: mac(&a[8..14]),
        spa: Ipv4Addr::new(a[14], a[15], a[16], a[17]),
        tha: mac(&a[18..24]),
        tpa: Ipv4Addr::new(a[24], a[25], a[26], a[27]),
    })
}

/// A parsed Neighbour Solicitation or Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdPacket {
    /// [`ND_NEIGHBOR_SOLICIT`] or [`ND_NEIGHBOR_ADVERT`].
    pub kind: u8,
    pub eth_src: [u8; 6],
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    /// NA flags byte (R/S/O); 0 for NS.
    pub flags: u8,
    pub target: Ipv6Addr,
    /// The Source (NS) or Target (NA) Link-Layer Address option, if present.
    pub lladdr: Option<[u8; 6]>,
}

/// Parses an Ethernet frame carrying an NS or NA directly after the IPv6 header. The checksum is not
/// verified (the kernel of the receiving host did not see this copy; a corrupt frame only ever leads
/// to a conflict report that the caller confirms).
pub fn parse_nd(frame: &[u8]) -> Option<NdPacket> {
    if frame.len() < 14 + 40 + 24 || u16::from_be_bytes([frame[12], frame[13]]) != ETH_P_IPV6 {
        return None;
    }
    let ip = &frame[14..];
    if ip[0] >> 4 != 6 || ip[6] != 58 {
        return None;
    }
    let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let icmp_end = (40 + plen).min(ip.len());
    let icmp = &ip[40..icmp_end];
    if icmp.len() < 24 {
        return None;
    }
    let kind = icmp[0];
    if kind != ND_NEIGHBOR_SOLICIT && kind != ND_NEIGHBOR_ADVERT {
        return None;
    }
    let addr = |b: &[u8]| {
        let mut o = [0u8; 16];
        o.copy_from_slice(&b[..16]);
        Ipv6Addr::from(o)
    };
    let want_opt = if kind == ND_NEIGHBOR_SOLICIT { 1 } else { 2 };
    let mut lladdr = None;
    let mut opts = &icmp[24..];
    let mut guard = 0;
    while opts.len() >= 8 && guard < 32 {
        guard += 1;
        let olen = usize::from(opts[1]) * 8;
        if olen == 0 || olen > opts.len() {
            break;
        }
        if opts[0] == want_opt && olen >= 8 {
            lladdr = Some([opts[2], opts[3], opts[4], opts[5], opts[6], opts[7]]);
        }
        opts = &opts[olen..];
    }
    let mut eth_src = [0u8; 6];
    eth_src.copy_from_slice(&frame[6..12]);
    Some(NdPacket {
        kind,
        eth_src,
        src: addr(&ip[8..24]),
        dst: addr(&ip[24..40]),
        hop_limit: ip[7],
        flags: if kind == ND_NEIGHBOR_ADVERT {
            icmp[4]
        } else {
            0
        },
        target: addr(&icmp[8..24]),
        lladdr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

    #[test]
    fn garp_layout() {
        let f = garp_frame(MAC, Ipv4Addr::new(192, 0, 2, 97));
        assert_eq!(f.len(), 60);
        assert_eq!(&f[0..6], &BROADCAST_MAC);
        assert_eq!(&f[6..12], &MAC);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        let a = parse_arp(&f).unwrap();
        assert_eq!(a.op, ARPOP_REQUEST);
        assert_eq!(a.sha, MAC);
        assert_eq!(a.spa, Ipv4Addr::new(192, 0, 2, 97));
        assert_eq!(a.tpa, Ipv4Addr::new(192, 0, 2, 97));
        assert_eq!(a.tha, BROADCAST_MAC);
        assert!(f[42..].iter().all(|&b| b == 0));
    }

    #[test]
    fn arp_probe_layout() {
        let f = arp_probe_frame(MAC, Ipv4Addr::new(192, 0, 2, 50));
        let a = parse_arp(&f).unwrap();
        assert_eq!(a.op, ARPOP_REQUEST);
        assert_eq!(a.spa, Ipv4Addr::UNSPECIFIED);
        assert_eq!(a.tha, [0; 6]);
        assert_eq!(a.tpa, Ipv4Addr::new(192, 0, 2, 50));
        assert!(parse_arp(&f[..30]).is_none());
    }

    #[test]
    fn icmpv6_checksum_known_vector() {
        // An echo request fe80::1 -> fe80::2, id 0x1234 seq 1, payload "ab"; checksum worked by hand:
        // pseudo-header words sum (fe80+1 + fe80+2 + len 10 + nh 58) plus message words.
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "fe80::2".parse().unwrap();
        let msg = [128u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'a', b'b'];
        let mut sum: u32 = 0xfe80 + 1 + 0xfe80 + 2 + 10 + 58;
        sum += 0x8000 + 0x1234 + 1 + 0x6162;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let expected = !(sum as u16);
        assert_eq!(icmpv6_checksum(&src, &dst, &msg), expected);
        // Verifying a message with its checksum in place yields 0.
        let mut with = msg;
        with[2..4].copy_from_slice(&expected.to_be_bytes());
        assert_eq!(icmpv6_checksum(&src, &dst, &with), 0);
        // Odd length pads with a zero byte.
        let mut sum: u32 = 0xfe80 + 1 + 0xfe80 + 2 + 1 + 58 + 0x0100;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(icmpv6_checksum(&src, &dst, &[1]), !(sum as u16));
    }

    #[test]
    fn na_layout_and_checksum() {
        let vip: Ipv6Addr = "2001:db8::97".parse().unwrap();
        let f = unsolicited_na_frame(MAC, vip);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        let nd = parse_nd(&f).unwrap();
        assert_eq!(nd.kind, ND_NEIGHBOR_ADVERT);
        assert_eq!(nd.hop_limit, 255);
        assert_eq!(nd.flags, NA_FLAG_OVERRIDE);
        assert_eq!(nd.flags & (NA_FLAG_SOLICITED | NA_FLAG_ROUTER), 0);
        assert_eq!(nd.target, vip);
        assert_eq!(nd.src, vip);
        assert_eq!(nd.dst, "ff02::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(nd.lladdr, Some(MAC));
        let icmp = &f[54..54 + 32];
        assert_eq!(icmpv6_checksum(&nd.src, &nd.dst, icmp), 0);
    }

    #[test]
    fn dad_ns_layout() {
        let a: Ipv6Addr = "2001:db8::abcd:1234".parse().unwrap();
        let f = dad_ns_frame(MAC, a);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0xff, 0xcd, 0x12, 0x34]);
        let nd = parse_nd(&f).unwrap();
        assert_eq!(nd.kind, ND_NEIGHBOR_SOLICIT);
        assert_eq!(nd.src, Ipv6Addr::UNSPECIFIED);
        assert_eq!(nd.dst, "ff02::1:ffcd:1234".parse::<Ipv6Addr>().unwrap());
        assert_eq!(nd.target, a);
        assert_eq!(nd.lladdr, None);
        assert_eq!(icmpv6_checksum(&nd.src, &nd.dst, &f[54..54 + 24]), 0);
    }

    #[test]
    fn parsers_reject_garbage() {
        for len in 0..80 {
            let v = vec![0xffu8; len];
            assert!(parse_arp(&v).is_none());
            assert!(parse_nd(&v).is_none());
        }
    }
}

#[cfg(test)]
mod vmac_tests {
    use super::*;

    #[test]
    fn a_virtual_macs_gratuitous_arp_is_a_reply_nobody_answers() {
        let mac = [0, 0, 0x5e, 0, 1, 51];
        assert!(is_vrrp_virtual_mac(mac));
        assert!(is_vrrp_virtual_mac([0, 0, 0x5e, 0, 2, 52]));
        assert!(!is_vrrp_virtual_mac([2, 0, 0, 0, 0, 1]));
        let f = garp_reply_frame(mac, Ipv4Addr::new(192, 0, 2, 97));
        assert_eq!(&f[..6], &BROADCAST_MAC);
        assert_eq!(&f[6..12], &mac);
        // The ARP opcode (after the 14-byte Ethernet header and 6 bytes of types and lengths).
        assert_eq!(u16::from_be_bytes([f[20], f[21]]), ARPOP_REPLY);
    }
}
