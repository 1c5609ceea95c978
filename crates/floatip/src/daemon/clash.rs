//! VRID clashes: speakers on an instance's VRID whose adverts do not list our virtual addresses (another
//! virtual router on our VRID; `vrrp::validate` drops their adverts as `address_set`). This module
//! remembers who they are for `status`, and decides when one is worth a log line: once per speaker,
//! and again only after it has been silent for [`CLASH_FORGET`]. Its MAC is learnt by asking the LAN
//! (an ARP probe / NS for its address when it is first heard); the answer arrives through the ARP/ND
//! watch like any sighting ([`Clashes::learn_mac`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vrrp::packet::address_list;
use vrrp::Advert;

use crate::control::{age_ms, format_mac, ClashStatus};

/// A clashing speaker silent this long is forgotten: `status` stops showing it, and if it speaks again
/// it is logged again.
pub const CLASH_FORGET: Duration = Duration::from_secs(60);

/// One foreign speaker on our VRID, as last heard.
#[derive(Debug, Clone)]
pub struct Clash {
    pub priority: u8,
    pub addresses: Arc<[IpAddr]>,
    pub last_heard: Instant,
    /// Its adverts dropped since it was (last) first heard.
    pub adverts: u64,
    /// Its MAC, once it answered our probe for its address.
    pub mac: Option<[u8; 6]>,
}

/// The foreign speakers of one instance, by advert source address.
#[derive(Debug, Default, Clone)]
pub struct Clashes {
    by_src: HashMap<IpAddr, Clash>,
}

impl Clashes {
    /// Records a dropped advert from `src`. True when it should be logged: a speaker not heard before,
    /// or heard again after [`CLASH_FORGET`] of silence.
    pub fn heard(&mut self, now: Instant, src: IpAddr, advert: &Advert) -> bool {
        // Bounded: the forgotten go first, so a flood of spoofed sources cannot grow the map for good.
        if !self.by_src.contains_key(&src) && self.by_src.len() >= 64 {
            self.by_src
                .retain(|_, c| now.saturating_duration_since(c.last_heard) < CLASH_FORGET);
            if self.by_src.len() >= 64 {
                return false;
            }
        }
        let fresh = Clash {
            priority: advert.priority,
            addresses: advert.addresses.clone(),
            last_heard: now,
            adverts: 1,
            mac: None,
        };
        match self.by_src.get_mut(&src) {
            Some(c) if now.saturating_duration_since(c.last_heard) < CLASH_FORGET => {
                c.priority = advert.priority;
                c.addresses = advert.addresses.clone();
                c.last_heard = now;
                c.adverts += 1;
                false
            }
            Some(c) => {
                *c = fresh;
                true
            }
            None => {
                self.by_src.insert(src, fresh);
                true
            }
        }
    }

    /// `addr` is answered by `mac`: if a clashing speaker has that address and no MAC yet, it is
    /// learnt; true then (worth a log line).
    pub fn learn_mac(&mut self, addr: IpAddr, mac: [u8; 6]) -> bool {
        match self.by_src.get_mut(&addr) {
            Some(c) if c.mac.is_none() => {
                c.mac = Some(mac);
                true
            }
            _ => false,
        }
    }

    /// The speakers heard within [`CLASH_FORGET`], by address.
    pub fn status(&self, now: Instant) -> Vec<ClashStatus> {
        let mut out: Vec<ClashStatus> = self
            .by_src
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.last_heard) < CLASH_FORGET)
            .map(|(src, c)| ClashStatus {
                address: *src,
                addresses: c.addresses.to_vec(),
                priority: c.priority,
                adverts: c.adverts,
                mac: c.mac.as_ref().map(format_mac),
                last_heard_age_ms: age_ms(now, c.last_heard),
            })
            .collect();
        out.sort_by_key(|c| c.address);
        out
    }
}

/// The log line for a clash: who, on which VRID, with which addresses, and what to do.
pub fn describe(instance: &str, vrid: u8, src: IpAddr, advert: &Advert, ours: &[IpAddr]) -> String {
    format!(
        "VRID clash on instance {instance}: {src} speaks VRRP on our VRID {vrid} (priority {}) for {}, \
         not for our {}; another virtual router uses our VRID, so its adverts are ignored (we neither \
         yield to it nor claim because of it). Pick another VRID on one of the two clusters (`vrid`, \
         unique per LAN), or give both the same `addresses` if it is meant to be our peer",
        advert.priority,
        address_list(&advert.addresses),
        address_list(ours),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrrp::Version;

    fn advert(priority: u8, addr: &str) -> Advert {
        Advert {
            version: Version::V3,
            vrid: 51,
            priority,
            interval_cs: 100,
            addresses: Arc::from([addr.parse::<IpAddr>().unwrap()]),
        }
    }

    #[test]
    fn logged_once_per_speaker_until_it_falls_silent() {
        let mut c = Clashes::default();
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.9".parse().unwrap();
        let b: IpAddr = "192.0.2.10".parse().unwrap();
        assert!(c.heard(t0, a, &advert(200, "192.0.2.50")));
        for i in 1..100 {
            assert!(!c.heard(
                t0 + Duration::from_millis(100 * i),
                a,
                &advert(201, "192.0.2.50")
            ));
        }
        assert!(
            c.heard(t0, b, &advert(100, "192.0.2.60")),
            "another speaker is its own line"
        );
        let later = t0 + Duration::from_secs(10);
        let st = c.status(later);
        assert_eq!(st.len(), 2);
        assert_eq!(st[1].address, b, "sorted by address");
        assert_eq!(st[0].address, a);
        assert_eq!(st[0].priority, 201);
        assert_eq!(st[0].adverts, 100);
        assert_eq!(
            st[0].addresses,
            vec!["192.0.2.50".parse::<IpAddr>().unwrap()]
        );
        // Silent for CLASH_FORGET: gone from status, and logged again when it comes back.
        let gone = t0 + Duration::from_millis(9_900) + CLASH_FORGET;
        assert!(c.status(gone).iter().all(|s| s.address != a));
        assert!(c.heard(gone, a, &advert(200, "192.0.2.50")));
        assert_eq!(
            c.status(gone)
                .iter()
                .find(|s| s.address == a)
                .unwrap()
                .adverts,
            1
        );
    }

    #[test]
    fn a_flood_of_sources_stays_bounded() {
        let mut c = Clashes::default();
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let src = IpAddr::from(std::net::Ipv4Addr::from(0xc000_0200 + i));
            c.heard(t0, src, &advert(200, "192.0.2.50"));
        }
        assert_eq!(c.status(t0).len(), 64);
    }

    #[test]
    fn the_log_line_says_who_what_and_what_to_do() {
        let line = describe(
            "files",
            51,
            "192.0.2.9".parse().unwrap(),
            &advert(200, "192.0.2.50"),
            &["192.0.2.97".parse().unwrap()],
        );
        assert!(line.contains("192.0.2.9 speaks VRRP on our VRID 51 (priority 200) for 192.0.2.50, not for our 192.0.2.97"), "{line}");
        assert!(
            line.contains("Pick another VRID on one of the two clusters"),
            "{line}"
        );
    }
}
