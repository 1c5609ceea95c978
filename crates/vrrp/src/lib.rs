//! `vrrp`: the VRRP protocol as pure data and logic, with no I/O.
//!
//! - [`auth`] owns advert authentication: VRRPv2 PASS and keepalived 2.4's auth_hmac trailer (sign,
//!   verify, the send sequence and the per-sender replay state), keys as data, time as an argument.
//! - [`packet`] owns the wire format: VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798 / RFC 9568) adverts over
//!   IPv4 and IPv6, their checksums, and [`packet::DecodeError`].
//! - [`validate`] owns receive-side acceptance: given the bytes and what the socket knew (source,
//!   destination, TTL), accept an advert or name the reason to drop it.
//! - [`machine`] owns the per-instance election: [`machine::Instance`] takes events with the time as an
//!   argument and yields [`machine::Action`]s and a next deadline. No sockets, no clock, no runtime.
//!
//! See the crate README for the twenty-line driver loop.

pub mod auth;
pub mod machine;
pub mod packet;
pub mod validate;

pub use machine::{
    Action, Config, Event, Instance, Override, State, Transition, TAKEOVER_PRIORITY,
};
pub use packet::{Advert, ChecksumMode, DecodeError, Version};
pub use validate::{DropReason, Received, RxPolicy};
