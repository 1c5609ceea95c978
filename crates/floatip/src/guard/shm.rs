//! The guard's shared memory: the daemon's deadline and the wake-up handshake ([`State`]), the held
//! VIPs (a double-buffered table with a seqlock per buffer, [`Table`]), the mapping itself ([`Region`]),
//! and `Instant` to CLOCK_MONOTONIC nanoseconds ([`Clock`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use super::{Vip, MAX_HELD};

/// CLOCK_MONOTONIC now, in nanoseconds.
pub(super) fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `Instant` to CLOCK_MONOTONIC nanoseconds (std's `Instant` is CLOCK_MONOTONIC on Linux): one pair
/// of readings at start, then arithmetic only.
#[derive(Clone, Copy, Debug)]
pub(super) struct Clock {
    base: Instant,
    base_ns: u64,
}

impl Clock {
    pub(super) fn new() -> Clock {
        let base = Instant::now();
        Clock {
            base,
            base_ns: mono_ns(),
        }
    }

    pub(super) fn ns(&self, t: Instant) -> u64 {
        match t.checked_duration_since(self.base) {
            Some(d) => self.base_ns.saturating_add(d.as_nanos() as u64),
            None => self
                .base_ns
                .saturating_sub(self.base.duration_since(t).as_nanos() as u64),
        }
    }
}

/// The shared memory: the deadline and the wake-up protocol, and the held table. All atomics, so a
/// zeroed mapping is a valid empty one, and the two processes never race on plain memory.
#[repr(C)]
pub(super) struct Shared {
    pub(super) state: State,
    pub(super) held: Table,
}

#[repr(C)]
pub(super) struct State {
    /// CLOCK_MONOTONIC ns by which the daemon promised to call again; 0 = no promise.
    pub(super) deadline: AtomicU64,
    /// CLOCK_MONOTONIC ns of the daemon's last promise (for the guard's log).
    pub(super) checkin: AtomicU64,
    /// The guard sleeps until this (u64::MAX: until woken); 0 = awake. A daemon whose new deadline is
    /// earlier swaps it to 0 and writes a byte to the pipe.
    pub(super) asleep_until: AtomicU64,
    /// How many deadlines the guard has acted on.
    pub(super) removals: AtomicU64,
}

/// The held VIPs, double-buffered: the daemon writes the buffer not in use, then flips `active`. Each
/// buffer has a seqlock (odd while written) for the guard's torn-read check. A daemon stopped in the
/// middle of a write is writing the inactive buffer, so the guard still reads the last complete set.
#[repr(C)]
pub(super) struct Table {
    active: AtomicU32,
    bufs: [Buffer; 2],
}

#[repr(C)]
struct Buffer {
    seq: AtomicU64,
    len: AtomicU32,
    entries: [Entry; MAX_HELD],
}

/// One VIP: index, family (4 or 6) << 8 | prefix length, address (IPv4 in `addr[0]`).
#[repr(C)]
struct Entry {
    index: AtomicU32,
    meta: AtomicU32,
    addr: [AtomicU32; 4],
}

impl Entry {
    fn store(&self, &(index, addr, len): &Vip) {
        let (family, words) = match addr {
            IpAddr::V4(a) => (4u32, [u32::from(a), 0, 0, 0]),
            IpAddr::V6(a) => {
                let b = a.octets();
                let w = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                (6u32, [w(0), w(4), w(8), w(12)])
            }
        };
        self.index.store(index, Ordering::Relaxed);
        self.meta
            .store(family << 8 | u32::from(len), Ordering::Relaxed);
        for (slot, word) in self.addr.iter().zip(words) {
            slot.store(word, Ordering::Relaxed);
        }
    }

    fn load(&self) -> Vip {
        let meta = self.meta.load(Ordering::Relaxed);
        let w = [0, 1, 2, 3].map(|i| self.addr[i].load(Ordering::Relaxed));
        let addr = if meta >> 8 == 6 {
            let mut b = [0u8; 16];
            for (i, word) in w.iter().enumerate() {
                b[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(b))
        } else {
            IpAddr::V4(Ipv4Addr::from(w[0]))
        };
        (self.index.load(Ordering::Relaxed), addr, meta as u8)
    }
}

impl Table {
    /// Writes `held` (at most [`MAX_HELD`]) into the inactive buffer (single writer).
    pub(super) fn stage(&self, held: &[Vip]) -> u32 {
        let next = 1 - self.active.load(Ordering::Relaxed) % 2;
        let buf = &self.bufs[next as usize];
        let seq = buf.seq.load(Ordering::Relaxed);
        buf.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let held = &held[..held.len().min(MAX_HELD)];
        for (entry, vip) in buf.entries.iter().zip(held) {
            entry.store(vip);
        }
        buf.len.store(held.len() as u32, Ordering::Relaxed);
        buf.seq.store(seq.wrapping_add(2), Ordering::Release);
        next
    }

    pub(super) fn write(&self, held: &[Vip]) {
        let next = self.stage(held);
        self.active.store(next, Ordering::Release);
    }

    /// The last complete set written (retrying a read that a write overlapped).
    pub(super) fn read(&self) -> Vec<Vip> {
        loop {
            let buf = &self.bufs[(self.active.load(Ordering::Acquire) % 2) as usize];
            let seq = buf.seq.load(Ordering::Acquire);
            if seq % 2 == 1 {
                // The writer flipped to this buffer and is already writing it again: look again.
                std::hint::spin_loop();
                continue;
            }
            let len = (buf.len.load(Ordering::Relaxed) as usize).min(MAX_HELD);
            let held: Vec<Vip> = buf.entries[..len].iter().map(Entry::load).collect();
            fence(Ordering::Acquire);
            if buf.seq.load(Ordering::Relaxed) == seq {
                return held;
            }
        }
    }
}

/// The shared mapping (MAP_SHARED | MAP_ANONYMOUS, so a fork shares it rather than copies it).
pub(super) struct Region {
    ptr: NonNull<Shared>,
}

// SAFETY: `Shared` holds only atomics; the mapping lives as long as the Region.
unsafe impl Send for Region {}
// SAFETY: as above: every access goes through atomics.
unsafe impl Sync for Region {}

impl Region {
    pub(super) fn new() -> std::io::Result<Region> {
        // SAFETY: a fresh anonymous mapping of the size of `Shared`; the kernel zeroes it, and all-zero
        // bytes are a valid `Shared` (atomics only).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                std::mem::size_of::<Shared>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        NonNull::new(p.cast())
            .map(|ptr| Region { ptr })
            .ok_or_else(|| std::io::Error::other("mmap returned null"))
    }
}

impl std::ops::Deref for Region {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        // SAFETY: the mapping is valid, aligned (page-aligned) and initialised for the Region's life.
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no reference to it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), std::mem::size_of::<Shared>()) };
    }
}
