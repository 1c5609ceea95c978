//! `bfd`: Bidirectional Forwarding Detection (RFC 5880, single hop per RFC 5881) as pure data and
//! logic, with no I/O.
//!
//! - [`packet`] owns the wire format: the Control packet's mandatory section, encode and decode,
//!   and the receive checks of RFC 5880 6.8.6 that need only the packet ([`packet::DecodeError`]).
//! - [`session`] owns one session to one peer: the state machine (6.2, 6.8), discriminators, the
//!   Poll/Final sequence, detection and diagnostics. [`session::Session`] takes packets and the
//!   operator's word with the time as an argument and yields [`session::Action`]s and a deadline.
//! - [`rx`] owns receive-side acceptance: [`rx::DropReason`] (one enum for every drop counter) and
//!   RFC 5881's TTL 255 rule.
//! - [`timers`] owns the timing rules as pure functions: transmit interval, jitter, Detection Time,
//!   slow start, and the seedable jitter source.
//!
//! No sockets, no clock, no runtime. See the crate README for the driver loop.

pub mod packet;
pub mod rx;
pub mod session;
pub mod timers;

pub use packet::{decode, ControlPacket, DecodeError, Diag, State};
pub use rx::{check_ttl, DropReason};
pub use session::{Action, Config, ConfigError, Detector, Session, StateChange};
pub use timers::Jitter;
