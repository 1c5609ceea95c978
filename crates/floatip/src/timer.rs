//! The loop's deadline as a timerfd: one wakeup, at the deadline.
//!
//! tokio's timer wheel keeps a deadline more than 64 ms away in a coarser level and wakes once early to
//! move it down, so a loop sleeping 100 ms between adverts woke twice per advert. A timerfd armed for
//! the absolute deadline wakes once, which is what an idle master should cost. Nearer deadlines are
//! exact in tokio's finest level and cost no extra syscalls there, so the loop uses this only beyond
//! [`TOKIO_EXACT`].

/// Deadlines nearer than this are exact in tokio's timer wheel (its finest level spans 64 ms).
pub const TOKIO_EXACT: Duration = Duration::from_millis(60);

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::time::{clock_gettime, ClockId as Clock};
use tokio::io::unix::AsyncFd;

struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A one-shot monotonic timer the loop re-arms before every wait.
pub struct Deadline {
    fd: AsyncFd<Fd>,
    armed: Option<Instant>,
}

impl Deadline {
    pub fn new() -> io::Result<Deadline> {
        let tfd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        Ok(Deadline {
            fd: crate::net::vrrp_socket::async_fd(Fd(tfd))?,
            armed: None,
        })
    }

    /// Arm the timer for `at` (std's `Instant` is CLOCK_MONOTONIC on Linux). Re-arming for the same
    /// instant costs nothing.
    pub fn set(&mut self, at: Instant) -> io::Result<()> {
        if self.armed == Some(at) {
            return Ok(());
        }
        let now = Instant::now();
        let mono = Duration::from(clock_gettime(Clock::CLOCK_MONOTONIC)?);
        // An absolute expiry of zero would disarm the timer; `mono` is never zero on a running system.
        let target = mono + at.saturating_duration_since(now);
        self.fd.get_ref().0.set(
            Expiration::OneShot(TimeSpec::from_duration(target)),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME,
        )?;
        self.armed = Some(at);
        Ok(())
    }

    /// Resolves once the armed instant has passed. Cancel-safe: dropping it loses nothing.
    pub async fn wait(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut buf = [0u8; 8];
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref().as_raw_fd(), &mut buf).map_err(io::Error::from)
            }) {
                Ok(Ok(_)) => {
                    // One read takes the one expiry: not readable again until re-armed and expired.
                    guard.clear_ready();
                    self.armed = None;
                    return Ok(());
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}
