//! Receive-side acceptance: why a packet is not taken, as one enum for counters, and RFC 5881's
//! single-hop TTL rule. Decoding itself is [`crate::packet::decode`]; selecting the session by
//! Your Discriminator is [`crate::Session::handle_packet`].

use std::fmt;

use crate::packet::{self, DecodeError};

/// Why a received packet was not taken. `label()` is stable (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Refused on its own ([`crate::packet::decode`]).
    Decode(DecodeError),
    /// Received with a TTL / hop limit other than 255 (RFC 5881 section 5): see [`check_ttl`].
    Ttl(u8),
    /// Your Discriminator is neither 0 nor ours: it belongs to another session (or none).
    Discriminator(u32),
    /// Our session is AdminDown: the remote's values were noted, the packet discarded (6.8.6).
    AdminDown,
}

impl DropReason {
    pub fn label(&self) -> &'static str {
        match self {
            DropReason::Decode(e) => e.label(),
            DropReason::Ttl(_) => "ttl",
            DropReason::Discriminator(_) => "discriminator",
            DropReason::AdminDown => "admin_down",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Decode(e) => e.fmt(f),
            DropReason::Ttl(ttl) => write!(f, "TTL {ttl}, single-hop BFD needs {}", packet::TTL),
            DropReason::Discriminator(d) => {
                write!(f, "your discriminator {d} is not this session's")
            }
            DropReason::AdminDown => f.write_str("session is AdminDown"),
        }
    }
}

impl std::error::Error for DropReason {}

impl From<DecodeError> for DropReason {
    fn from(e: DecodeError) -> Self {
        DropReason::Decode(e)
    }
}

/// RFC 5881 section 5 (GTSM): without authentication every received packet must have TTL (hop
/// limit) 255. The daemon reads the TTL from the socket and checks it before `handle_packet`.
pub fn check_ttl(ttl: u8) -> Result<(), DropReason> {
    if ttl == packet::TTL {
        Ok(())
    } else {
        Err(DropReason::Ttl(ttl))
    }
}
