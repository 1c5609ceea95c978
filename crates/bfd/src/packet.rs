//! The BFD Control packet on the wire (RFC 5880 section 4.1): the mandatory section, encode and
//! decode, and every check of section 6.8.6 that needs nothing but the packet itself.
//!
//! The bytes handled here are the UDP payload (RFC 5881: destination port 3784, TTL 255).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! Intervals are in microseconds, big-endian.
//!
//! Reading choices, all consistent between [`ControlPacket::encode`] and [`decode`]:
//! - **Check order** is 6.8.6's: payload shorter than the mandatory section, version, length too
//!   short (24, or 26 with the A bit), length beyond the payload, detect mult 0, M bit, my
//!   discriminator 0, your discriminator 0 outside Down/AdminDown, then the A bit.
//! - **Authentication is not implemented**, so this crate never has it configured: a packet with
//!   the A bit is refused ([`DecodeError::Authentication`]), as 6.8.6 says for a session without
//!   authentication. Such a session would also refuse a packet without A, so nothing is lost.
//! - **Bytes after `Length`** are not part of the BFD packet and are ignored (as FRR does); a
//!   `Length` above 24 without the A bit is accepted for the same reason.
//! - **P and F both set** (which 6.5 forbids a sender) is decoded as it is: 6.8.6 does not discard
//!   it, and the session treats each bit on its own (F ends our poll, P asks for a Final).
//! - **Reserved diagnostic codes** (9-31) decode to [`Diag::Reserved`] and re-encode unchanged.
//! - We always send the C, A, D and M bits clear and Required Min Echo RX 0 (no echo support).

use std::fmt;

/// BFD Control packets go to this UDP port (RFC 5881 section 4).
pub const PORT: u16 = 3784;
/// The source port of a session is one port from this range, the same for its whole life (RFC 5881 4).
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// TTL / hop limit on send; a packet received with anything else is dropped (RFC 5881 section 5).
pub const TTL: u8 = 255;
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Length of the mandatory section, and of every packet this crate sends.
pub const LEN: usize = 24;
/// The smallest `Length` of a packet with the A bit (mandatory section plus a 2-byte auth header).
pub const LEN_WITH_AUTH: usize = 26;

/// The session state field (RFC 5880 section 4.1, 2 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    AdminDown,
    Down,
    Init,
    Up,
}

impl State {
    pub fn from_bits(bits: u8) -> State {
        match bits & 0b11 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    pub fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// The name as RFC 5880 spells it: AdminDown, Down, Init, Up.
    pub fn as_str(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The diagnostic code (RFC 5880 section 4.1, 5 bits): why the sender's session last went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    NoDiagnostic,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    /// 9-31, reserved for future use: kept as received.
    Reserved(u8),
}

impl Diag {
    pub fn from_code(code: u8) -> Diag {
        match code & 0x1f {
            0 => Diag::NoDiagnostic,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            other => Diag::Reserved(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Diag::NoDiagnostic => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Reserved(code) => code & 0x1f,
        }
    }

    /// In words, as logs and reasons show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Diag::NoDiagnostic => "no diagnostic",
            Diag::ControlDetectionTimeExpired => "control detection time expired",
            Diag::EchoFunctionFailed => "echo function failed",
            Diag::NeighborSignaledSessionDown => "neighbor signaled session down",
            Diag::ForwardingPlaneReset => "forwarding plane reset",
            Diag::PathDown => "path down",
            Diag::ConcatenatedPathDown => "concatenated path down",
            Diag::AdministrativelyDown => "administratively down",
            Diag::ReverseConcatenatedPathDown => "reverse concatenated path down",
            Diag::Reserved(_) => "reserved diagnostic code",
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diag::Reserved(code) => write!(f, "reserved diagnostic code {code}"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// One BFD Control packet's mandatory section, decoded. The A and M bits are not here: a packet
/// with either is refused by [`decode`], and [`ControlPacket::encode`] sends both clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlPacket {
    pub diag: Diag,
    pub state: State,
    /// P: the sender asks for a packet with F (a Poll Sequence, 6.5).
    pub poll: bool,
    /// F: the answer to a Poll.
    pub final_: bool,
    /// C: the sender's BFD does not share fate with its control plane.
    pub control_plane_independent: bool,
    /// D: the sender wishes to run in Demand mode.
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    /// Microseconds.
    pub desired_min_tx_us: u32,
    /// Microseconds; 0: send me nothing.
    pub required_min_rx_us: u32,
    /// Microseconds; 0: the sender does not take Echo packets.
    pub required_min_echo_rx_us: u32,
}

const FLAG_P: u8 = 0x20;
const FLAG_F: u8 = 0x10;
const FLAG_C: u8 = 0x08;
const FLAG_A: u8 = 0x04;
const FLAG_D: u8 = 0x02;
const FLAG_M: u8 = 0x01;

impl ControlPacket {
    /// The 24 bytes on the wire (A and M clear, Length 24).
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = (VERSION << 5) | self.diag.code();
        let mut flags = self.state.bits() << 6;
        for (on, bit) in [
            (self.poll, FLAG_P),
            (self.final_, FLAG_F),
            (self.control_plane_independent, FLAG_C),
            (self.demand, FLAG_D),
        ] {
            if on {
                flags |= bit;
            }
        }
        b[1] = flags;
        b[2] = self.detect_mult;
        b[3] = LEN as u8;
        b[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx_us.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx_us.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx_us.to_be_bytes());
        b
    }

    /// The same packet apart from the P and F bits (6.8.7: a change of anything else is sent at once).
    pub fn same_content(&self, other: &ControlPacket) -> bool {
        let strip = |p: &ControlPacket| ControlPacket {
            poll: false,
            final_: false,
            ..*p
        };
        strip(self) == strip(other)
    }
}

/// Every way a packet can be refused on its own. `label()` is stable (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// Shorter than the 24-byte mandatory section.
    Truncated {
        len: usize,
    },
    /// Version other than 1.
    Version(u8),
    /// `Length` below 24 (26 with the A bit).
    LengthTooShort {
        length: u8,
        auth: bool,
    },
    /// `Length` says more than the UDP payload holds.
    LengthBeyondPayload {
        length: u8,
        payload: usize,
    },
    DetectMultZero,
    /// The M bit (reserved for point-to-multipoint BFD).
    Multipoint,
    MyDiscriminatorZero,
    /// Your Discriminator 0 is only allowed while the sender is Down or AdminDown.
    YourDiscriminatorZero {
        state: State,
    },
    /// The A bit: authentication is not configured (this crate does not implement it).
    Authentication,
}

impl DecodeError {
    /// A short stable name for counters: `bfd_drops_total{reason="version"}`.
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::Version(_) => "version",
            DecodeError::LengthTooShort { .. } => "length_short",
            DecodeError::LengthBeyondPayload { .. } => "length_beyond_payload",
            DecodeError::DetectMultZero => "detect_mult_zero",
            DecodeError::Multipoint => "multipoint",
            DecodeError::MyDiscriminatorZero => "my_discriminator_zero",
            DecodeError::YourDiscriminatorZero { .. } => "your_discriminator_zero",
            DecodeError::Authentication => "authentication",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { len } => {
                write!(
                    f,
                    "truncated: {len} bytes, a BFD Control packet has at least {LEN}"
                )
            }
            DecodeError::Version(v) => write!(f, "unsupported version {v} (we speak {VERSION})"),
            DecodeError::LengthTooShort { length, auth } => {
                let min = if *auth { LEN_WITH_AUTH } else { LEN };
                let with = if *auth { " with the A bit" } else { "" };
                write!(f, "length field {length} below the minimum {min}{with}")
            }
            DecodeError::LengthBeyondPayload { length, payload } => {
                write!(
                    f,
                    "length field {length} beyond the {payload}-byte UDP payload"
                )
            }
            DecodeError::DetectMultZero => f.write_str("detect mult 0"),
            DecodeError::Multipoint => f.write_str("multipoint (M) bit set"),
            DecodeError::MyDiscriminatorZero => f.write_str("my discriminator 0"),
            DecodeError::YourDiscriminatorZero { state } => {
                write!(
                    f,
                    "your discriminator 0 in state {state} (only Down or AdminDown may)"
                )
            }
            DecodeError::Authentication => {
                f.write_str("authentication (A) bit set, but authentication is not configured")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decode a UDP payload. Never panics; refuses what 6.8.6 discards on the packet alone.
/// Selecting the session (a non-zero Your Discriminator must be ours) is [`crate::Session`]'s job.
pub fn decode(payload: &[u8]) -> Result<ControlPacket, DecodeError> {
    if payload.len() < LEN {
        return Err(DecodeError::Truncated { len: payload.len() });
    }
    let version = payload[0] >> 5;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let flags = payload[1];
    let auth = flags & FLAG_A != 0;
    let length = payload[3];
    let min = if auth { LEN_WITH_AUTH } else { LEN };
    if usize::from(length) < min {
        return Err(DecodeError::LengthTooShort { length, auth });
    }
    if usize::from(length) > payload.len() {
        return Err(DecodeError::LengthBeyondPayload {
            length,
            payload: payload.len(),
        });
    }
    let detect_mult = payload[2];
    if detect_mult == 0 {
        return Err(DecodeError::DetectMultZero);
    }
    if flags & FLAG_M != 0 {
        return Err(DecodeError::Multipoint);
    }
    let my_discriminator = be32(payload, 4);
    if my_discriminator == 0 {
        return Err(DecodeError::MyDiscriminatorZero);
    }
    let state = State::from_bits(flags >> 6);
    let your_discriminator = be32(payload, 8);
    if your_discriminator == 0 && !matches!(state, State::Down | State::AdminDown) {
        return Err(DecodeError::YourDiscriminatorZero { state });
    }
    if auth {
        return Err(DecodeError::Authentication);
    }
    Ok(ControlPacket {
        diag: Diag::from_code(payload[0]),
        state,
        poll: flags & FLAG_P != 0,
        final_: flags & FLAG_F != 0,
        control_plane_independent: flags & FLAG_C != 0,
        demand: flags & FLAG_D != 0,
        detect_mult,
        my_discriminator,
        your_discriminator,
        desired_min_tx_us: be32(payload, 12),
        required_min_rx_us: be32(payload, 16),
        required_min_echo_rx_us: be32(payload, 20),
    })
}
