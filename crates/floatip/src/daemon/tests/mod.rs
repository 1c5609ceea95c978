//! The daemon's event handling, driven through a fake kernel edge ([`super::fake`]) with a virtual
//! clock, without root. This file is the harness; the tests are grouped by what they drive:
//! [`election`] (claims, peers, releases, reloads, status), [`clash`] (strangers on our VRID, packet
//! counts), [`probe`] (claiming only what nobody else answers for), [`track`] (track files), [`groups`] and [`boot`] (late
//! and re-created interfaces).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use vrrp::packet::{self, Advert, Version, GROUP_V4};
use vrrp::{ChecksumMode, State};

use super::{Channels, Daemon, Record};
use crate::config;
use crate::control::{ControlCall, Request, Response, HISTORY_MAX};
use crate::net::fake::{Call, FakeHost};
use crate::net::vrrp_socket::Datagram;
use crate::wakeup::Wakeup;

pub(super) const IFINDEX: u32 = 2;
pub(super) const OWN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub(super) const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub(super) const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 97);

pub(super) fn instance(vrid: u8, priority: u8) -> String {
    format!(
        "[[instance]]\nname = \"files\"\ninterface = \"eth0\"\nvrid = {vrid}\npriority = {priority}\n\
         advert_interval = \"100ms\"\naddresses = [\"{VIP}/24\"]\n"
    )
}

/// One daemon over a fake host, with its config in a temporary directory and a virtual clock.
pub(super) struct Harness {
    runtime: tokio::runtime::Runtime,
    host: FakeHost,
    daemon: Daemon,
    now: Instant,
    dir: PathBuf,
}

impl Harness {
    pub(super) fn start(instances: &str) -> Harness {
        Harness::start_with(instances, |_| {})
    }

    /// Like [`Harness::start`], with the host prepared by `host` first (more links).
    pub(super) fn start_with(instances: &str, host_setup: impl FnOnce(&FakeHost)) -> Harness {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "floatip-daemon-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let host = FakeHost::with_link("eth0", IFINDEX, (IpAddr::V4(OWN), 24));
        host_setup(&host);
        let (daemon, now) = {
            let _rt = runtime.enter();
            let path = Self::write_config(&dir, instances);
            let cfg = config::load(&path).expect("a valid test config");
            let chans = Channels {
                checks: mpsc::channel(16).0,
                witness: mpsc::channel(16).0,
                track_files: mpsc::channel(16).0,
                sightings: mpsc::channel(16).0,
            };
            let mut daemon = Daemon::new(
                Box::new(host.clone()),
                &cfg,
                Default::default(),
                Wakeup::new().unwrap(),
                chans,
            )
            .unwrap();
            let now = Instant::now();
            for inst in &cfg.instances {
                let rt = daemon.prepare(inst, Duration::ZERO).unwrap();
                daemon.start(rt, now).unwrap();
            }
            (daemon, now)
        };
        Harness {
            runtime,
            host,
            daemon,
            now,
            dir,
        }
    }

    pub(super) fn write_config(dir: &std::path::Path, instances: &str) -> PathBuf {
        let path = dir.join("floatip.toml");
        let text = format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n\n{instances}",
            dir.join("floatip.sock").display(),
            dir.join("state").display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs the loop's deadlines up to `by` from now, as the protocol loop would.
    pub(super) fn advance(&mut self, by: Duration) {
        let _rt = self.runtime.enter();
        let until = self.now + by;
        for _ in 0..100_000 {
            self.daemon.carry_out(self.now);
            match self.daemon.next_deadline() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.daemon.on_deadline(self.now);
                }
                _ => break,
            }
        }
        self.now = until;
        self.daemon.carry_out(self.now);
        // Let the announcement bursts spawned meanwhile send their first round.
        self.runtime.block_on(tokio::task::yield_now());
    }

    /// One control request; the answer may come at once or after later [`Harness::advance`]s.
    pub(super) fn call(&mut self, request: Request) -> oneshot::Receiver<Response> {
        let _rt = self.runtime.enter();
        let (reply, answer) = oneshot::channel();
        self.daemon
            .on_control(self.now, ControlCall { request, reply });
        self.daemon.carry_out(self.now);
        answer
    }

    /// An advert from the peer on our VRID.
    pub(super) fn advert_from_peer(&mut self, vrid: u8, priority: u8) {
        self.advert_for(vrid, priority, VIP);
    }

    /// An advert from the peer on `vrid` for `vip`.
    pub(super) fn advert_for(&mut self, vrid: u8, priority: u8, vip: Ipv4Addr) {
        let advert = Advert {
            version: Version::V3,
            vrid,
            priority,
            interval_cs: 10,
            addresses: Arc::from([IpAddr::V4(vip)]),
        };
        self.advert_from(IpAddr::V4(PEER), &advert);
    }

    /// `advert`, encoded, as sent by `src` to the group.
    pub(super) fn advert_from(&mut self, src: IpAddr, advert: &Advert) {
        let bytes = packet::encode(
            advert,
            src,
            IpAddr::V4(GROUP_V4),
            ChecksumMode::PseudoHeader,
        );
        self.packet_from(src, &bytes);
    }

    /// Raw bytes read from the VRRP socket, as sent by `src` to the group.
    pub(super) fn packet_from(&mut self, src: IpAddr, bytes: &[u8]) {
        let d = Datagram {
            src,
            dst: IpAddr::V4(GROUP_V4),
            ttl: 255,
            len: bytes.len(),
        };
        let _rt = self.runtime.enter();
        self.daemon.on_packet(self.now, (IFINDEX, false), &d, bytes);
        self.daemon.carry_out(self.now);
    }

    /// `floatip status` through the control path.
    pub(super) fn status(&mut self) -> crate::control::InstanceStatus {
        match answer(&mut self.call(Request::Status { instance: None })) {
            Some(Response::Status { mut instances, .. }) => instances.remove(0),
            other => panic!("expected a status, got {other:?}"),
        }
    }

    pub(super) fn state(&self) -> State {
        let rt = self.daemon.instances.iter().find(|r| !r.retiring).unwrap();
        rt.core.state()
    }

    pub(super) fn state_of(&self, name: &str) -> State {
        let rt = self.daemon.instances.iter().find(|r| r.cfg.name == name);
        rt.unwrap().core.state()
    }

    pub(super) fn become_master(&mut self) {
        self.advance(Duration::from_secs(1));
        assert_eq!(self.state(), State::Master);
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(super) fn answer(rx: &mut oneshot::Receiver<Response>) -> Option<Response> {
    rx.try_recv().ok()
}

pub(super) fn vip() -> IpAddr {
    IpAddr::V4(VIP)
}

pub(super) fn status_of(h: &Harness, name: &str) -> crate::control::InstanceStatus {
    let rt = h.daemon.instances.iter().find(|r| r.cfg.name == name);
    rt.unwrap().status(&[], h.now)
}

mod auth;
mod boot;
mod clash;
mod election;
mod events;
mod groups;
mod probe;
mod track;
mod vmac;
