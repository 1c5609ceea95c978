//! An instance's hold on its VIPs ([`VipHold`]): whether they are in the kernel by our hand, when
//! their finite lifetime and the periodic announcement are refreshed next, and whether an
//! announcement burst may go on. The only writer of each of these.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::config::AnnounceConfig;
use crate::net::kernel::Announce;

/// One instance's hold on its VIPs.
#[derive(Debug, Default)]
pub(super) struct VipHold {
    /// Our VIPs are in the kernel by our hand (between AddAddresses and RemoveAddresses).
    held: bool,
    /// When the VIPs' kernel lifetime is pushed forward next.
    next_refresh: Option<Instant>,
    /// When the periodic announcement (`announce.refresh`) goes out next.
    next_announce_refresh: Option<Instant>,
    /// Announcement bursts run only while this holds (MASTER, holding, not handing over); the bursts'
    /// tasks read it.
    may_announce: Arc<AtomicBool>,
}

impl VipHold {
    /// Whether our VIPs are in the kernel by our hand.
    pub(super) fn held(&self) -> bool {
        self.held
    }

    /// The VIPs are ours from `now` (in the kernel, or about to be): their lifetime refresh (every
    /// `refresh_every`) and the periodic announcement start over.
    pub(super) fn take(
        &mut self,
        now: Instant,
        refresh_every: Duration,
        announce: &AnnounceConfig,
    ) {
        self.held = true;
        self.next_refresh = Some(now + refresh_every);
        self.next_announce_refresh = announce.refresh.map(|p| now + p);
    }

    /// The VIPs are not ours any more: no refresh, no announcement (a burst under way stops).
    pub(super) fn release(&mut self) {
        self.held = false;
        self.allow_announcements(false);
        self.next_refresh = None;
        self.next_announce_refresh = None;
    }

    /// Whether announcement bursts may go on (a burst ends when the claim does: announcing an address
    /// we gave up would pull clients back to a host that no longer answers).
    pub(super) fn allow_announcements(&self, allowed: bool) {
        self.may_announce.store(allowed, Ordering::Relaxed);
    }

    /// The lifetime refresh is due (within `slack` of `now`): true once, and the next one is
    /// scheduled `every` later.
    pub(super) fn refresh_due(&mut self, now: Instant, slack: Duration, every: Duration) -> bool {
        let due = self.next_refresh.is_some_and(|t| t <= now + slack);
        if due {
            self.next_refresh = Some(now + every);
        }
        due
    }

    /// The lifetime refresh is due at once (a reload changed the lifetime), if the VIPs are ours.
    pub(super) fn refresh_now(&mut self, now: Instant) {
        if self.held {
            self.next_refresh = Some(now);
        }
    }

    /// The periodic announcement is due: true once, and the next one is scheduled.
    pub(super) fn announce_refresh_due(&mut self, now: Instant, announce: &AnnounceConfig) -> bool {
        let due = self.next_announce_refresh.is_some_and(|t| t <= now);
        if due {
            self.next_announce_refresh = announce.refresh.map(|p| now + p);
        }
        due
    }

    /// New announcement settings (a reload): the periodic announcement starts over, if the VIPs are ours.
    pub(super) fn reschedule_announce(&mut self, now: Instant, announce: &AnnounceConfig) {
        self.next_announce_refresh = if self.held {
            announce.refresh.map(|p| now + p)
        } else {
            None
        };
    }

    /// The hold's next deadlines: the lifetime refresh (done up to `slack` late, see
    /// `Runtime::refresh_slack`) and the periodic announcement.
    pub(super) fn deadlines(&self, slack: Duration) -> [Option<Instant>; 2] {
        [
            self.next_refresh.map(|t| t + slack),
            self.next_announce_refresh,
        ]
    }

    /// The gratuitous ARP / NA burst after a claim: `count` announcements `spacing` apart, off the
    /// loop, while announcements are allowed.
    pub(super) fn announce(
        &self,
        announcer: Arc<dyn Announce>,
        addrs: Vec<IpAddr>,
        settings: &AnnounceConfig,
        instance: &str,
    ) {
        let may_announce = self.may_announce.clone();
        let count = settings.count;
        let spacing = settings.spacing;
        let name = instance.to_string();
        tokio::spawn(async move {
            for n in 0..count {
                if n > 0 {
                    tokio::time::sleep(spacing).await;
                }
                if !may_announce.load(Ordering::Relaxed) {
                    return;
                }
                for addr in &addrs {
                    if let Err(err) = announcer.announce(*addr) {
                        warn!(instance = %name, "cannot announce {addr}: {err}");
                    }
                }
            }
        });
    }
}
