//! Advert authentication as pure data and functions: VRRPv2 `auth_type PASS` (the 8-byte cleartext
//! password) and keepalived 2.4's `auth_hmac` trailer (HMAC-SHA256 truncated to 128 bits, a key id and
//! a time-based sequence number against replay), for v2 and v3, IPv4 and IPv6. Keys come in as data
//! and the wall-clock time is an argument: nothing here reads a file or a clock.
//!
//! The trailer (28 bytes) follows the VRRP message (after the v2 authentication data):
//!
//! ```text
//! | ext_type (1 = HMAC-SHA256/128) | key_id | reserved (0, 16 bits) |
//! | sec: UTC seconds since the epoch (32 bits)                       |
//! | subsec: 1/65536 s (16 bits)    | ctr: tie breaker (16 bits)      |
//! | HMAC-SHA256 truncated to 16 bytes                                |
//! ```
//!
//! The sequence number is `sec << 32 | subsec << 16 | ctr`, compared with serial-number arithmetic
//! (RFC 1982). The HMAC covers a 20-byte pseudo-header (family 4 or 6, version, VRID, 0, the source
//! address zero-padded to 16 bytes), then the VRRP message with its checksum read as zero, then the
//! trailer's first 12 bytes, then 16 zero bytes in place of the tag. The IP header is not covered.
//! Over IPv4 the VRRP checksum covers the message only (not the trailer); over IPv6 it covers the
//! whole payload, trailer included (what the kernel's `IPV6_CHECKSUM` computes for keepalived).
//! These facts come from keepalived 2.4.3 (`vrrp_auth_hmac.c`) and its test vectors.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::packet::Version;

/// Length of the `auth_hmac` trailer.
pub const TRAILER_LEN: usize = 28;
/// Length of the truncated HMAC in the trailer.
pub const TAG_LEN: usize = 16;
/// The trailer's `ext_type` for HMAC-SHA256 truncated to 128 bits (the only one defined).
pub const EXT_TYPE_SHA256: u8 = 1;
/// Shortest and longest key keepalived accepts (bytes).
pub const KEY_MIN: usize = 32;
pub const KEY_MAX: usize = 64;
/// Length of the pseudo-header bound into the HMAC.
const PSEUDO_LEN: usize = 20;
/// The v2 auth type of a cleartext password.
pub const AUTH_TYPE_PASS: u8 = 1;
/// Senders whose last sequence number is remembered per instance (least recently used goes).
pub const REPLAY_SENDERS: usize = 16;

/// One shared key, addressed by its id (1-255) so keys can be rotated make-before-break.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    pub id: u8,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key {{ id: {}, {} bytes }}", self.id, self.bytes.len())
    }
}

/// keepalived's three modes (its meanings): enforce needs a valid trailer; permissive signs but still
/// accepts adverts without a trailer; receive-only verifies a trailer when there is one, sends none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Permissive,
    ReceiveOnly,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Permissive => "permissive",
            Mode::ReceiveOnly => "receive-only",
        }
    }
}

/// How replays are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AntiReplay {
    /// A freshness window (the sender's `sec` within this many seconds of ours; needs synced clocks)
    /// plus a strictly growing sequence per sender.
    Time { window_secs: u32 },
    /// Only a strictly growing sequence per sender: no clock agreement needed, no freshness.
    Monotonic,
}

/// The `auth_hmac` settings of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacConfig {
    pub keys: Vec<Key>,
    /// The key id that signs (must be one of `keys`).
    pub active_key: u8,
    pub mode: Mode,
    pub anti_replay: AntiReplay,
}

impl HmacConfig {
    pub fn key(&self, id: u8) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }
}

/// What authentication an instance speaks. `Debug` shows no secret (no password, no key bytes).
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// None (auth type 0 in v2).
    #[default]
    None,
    /// VRRPv2 auth type 1: the password, zero-padded to 8 bytes, in cleartext. No security at all.
    Pass([u8; 8]),
    /// keepalived 2.4's HMAC trailer.
    Hmac(HmacConfig),
}

impl Auth {
    /// One line for status pages: what protects this instance's adverts (never a key or password).
    /// `None` without authentication.
    pub fn describe(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Pass(_) => Some("pass (cleartext password: no security)".to_string()),
            Auth::Hmac(h) => {
                let ids: Vec<String> = h.keys.iter().map(|k| k.id.to_string()).collect();
                let replay = match h.anti_replay {
                    AntiReplay::Time { window_secs } => format!("time window {window_secs}s"),
                    AntiReplay::Monotonic => "monotonic".to_string(),
                };
                Some(format!(
                    "hmac {}, signs with key {} (keys {}), anti-replay {replay}",
                    h.mode.name(),
                    h.active_key,
                    ids.join(", ")
                ))
            }
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Pass(_) => f.write_str("Pass(<redacted>)"),
            Auth::Hmac(cfg) => f.debug_tuple("Hmac").field(cfg).finish(),
        }
    }
}

/// Why authentication refused an advert. `label()` is stable (metrics label, status JSON).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no authentication trailer (mode enforce)")]
    Missing,
    #[error("malformed authentication trailer (type {ext_type}, reserved {reserved})")]
    Malformed { ext_type: u8, reserved: u16 },
    #[error("unknown authentication key id {0}")]
    UnknownKey(u8),
    #[error("bad HMAC (wrong key, or a forged or altered advert)")]
    BadTag,
    #[error("stale authentication trailer: clock skew {skew_secs} s is outside the {window_secs} s window")]
    Stale { skew_secs: i64, window_secs: u32 },
    #[error("replayed advert (sequence not above the last one from this sender)")]
    Replay,
    #[error("wrong VRRPv2 password")]
    PassMismatch,
}

impl AuthError {
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Missing => "auth_missing",
            AuthError::Malformed { .. } => "auth_malformed",
            AuthError::UnknownKey(_) => "auth_unknown_key",
            AuthError::BadTag => "auth_bad_tag",
            AuthError::Stale { .. } => "auth_stale",
            AuthError::Replay => "auth_replay",
            AuthError::PassMismatch => "auth_pass_mismatch",
        }
    }
}

/// A decoded trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub ext_type: u8,
    pub key_id: u8,
    pub reserved: u16,
    pub seq: u64,
    pub tag: [u8; TAG_LEN],
}

impl Trailer {
    /// Reads the 28 bytes of a trailer; `None` for any other length.
    pub fn parse(bytes: &[u8]) -> Option<Trailer> {
        if bytes.len() != TRAILER_LEN {
            return None;
        }
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&bytes[12..]);
        Some(Trailer {
            ext_type: bytes[0],
            key_id: bytes[1],
            reserved: u16::from_be_bytes([bytes[2], bytes[3]]),
            seq: u64::from_be_bytes(bytes[4..12].try_into().ok()?),
            tag,
        })
    }

    /// The first 12 bytes (all but the tag).
    fn prefix(&self) -> [u8; 12] {
        let mut p = [0; 12];
        p[0] = self.ext_type;
        p[1] = self.key_id;
        p[2..4].copy_from_slice(&self.reserved.to_be_bytes());
        p[4..12].copy_from_slice(&self.seq.to_be_bytes());
        p
    }

    pub fn to_bytes(&self) -> [u8; TRAILER_LEN] {
        let mut b = [0; TRAILER_LEN];
        b[..12].copy_from_slice(&self.prefix());
        b[12..].copy_from_slice(&self.tag);
        b
    }
}

/// The sequence number of a wall-clock reading (time since the Unix epoch), counter zero.
pub fn clock_seq(since_epoch: std::time::Duration) -> u64 {
    let subsec = (u64::from(since_epoch.subsec_nanos()) << 16) / 1_000_000_000;
    (u64::from(since_epoch.as_secs() as u32) << 32) | (subsec << 16)
}

/// RFC 1982: `a` comes after `b`.
pub fn seq_after(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) > 0
}

/// The 16-byte tag of `message` (a VRRP message, checksum field ignored) with the trailer prefix of
/// `trailer` (its tag ignored), sent by `src` on `vrid` with `version`.
pub fn compute_tag(
    key: &[u8],
    version: Version,
    vrid: u8,
    src: IpAddr,
    message: &[u8],
    trailer: &Trailer,
) -> [u8; TAG_LEN] {
    let mut mac = new_mac(key, version, vrid, src, message, trailer);
    let out = {
        mac.update(&[0; TAG_LEN]);
        mac.finalize().into_bytes()
    };
    let mut tag = [0; TAG_LEN];
    tag.copy_from_slice(&out[..TAG_LEN]);
    tag
}

fn new_mac(
    key: &[u8],
    version: Version,
    vrid: u8,
    src: IpAddr,
    message: &[u8],
    trailer: &Trailer,
) -> Hmac<Sha256> {
    let mut pseudo = [0u8; PSEUDO_LEN];
    pseudo[1] = version.number();
    pseudo[2] = vrid;
    match src {
        IpAddr::V4(a) => {
            pseudo[0] = 4;
            pseudo[4..8].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            pseudo[0] = 6;
            pseudo[4..20].copy_from_slice(&a.octets());
        }
    }
    // HMAC takes a key of any length (longer than the block is hashed first, as keepalived does).
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&pseudo);
    if message.len() >= 8 {
        mac.update(&message[..6]);
        mac.update(&[0, 0]);
        mac.update(&message[8..]);
    } else {
        mac.update(message);
    }
    mac.update(&trailer.prefix());
    mac
}

/// The trailer that signs `message` (the VRRP message as sent, before the trailer) with `key`.
pub fn sign(
    key: &Key,
    seq: u64,
    version: Version,
    vrid: u8,
    src: IpAddr,
    message: &[u8],
) -> [u8; TRAILER_LEN] {
    let mut trailer = Trailer {
        ext_type: EXT_TYPE_SHA256,
        key_id: key.id,
        reserved: 0,
        seq,
        tag: [0; TAG_LEN],
    };
    trailer.tag = compute_tag(&key.bytes, version, vrid, src, message, &trailer);
    trailer.to_bytes()
}

/// The sender's sequence: the larger of the clock and the last value plus one (keepalived's
/// `next_seq`). In time mode a last value stranded more than the window ahead of the clock (a clock
/// stepped back) restarts from the clock; monotonic mode always keeps strict growth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sequencer {
    pub last: u64,
}

impl Sequencer {
    pub fn next(&mut self, now: std::time::Duration, anti_replay: AntiReplay) -> u64 {
        let clk = clock_seq(now);
        if seq_after(clk, self.last) {
            self.last = clk;
            return clk;
        }
        let ahead = ((self.last >> 32) as u32).wrapping_sub((clk >> 32) as u32) as i32;
        match anti_replay {
            AntiReplay::Time { window_secs } if i64::from(ahead) > i64::from(window_secs) => {
                self.last = clk
            }
            _ => self.last = self.last.wrapping_add(1),
        }
        self.last
    }
}

/// The last accepted sequence of each recent sender (a bounded table, least recently used evicted;
/// only adverts whose HMAC verified ever touch it, so forged sources cannot churn it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayTable {
    /// (sender, last accepted sequence, use rank)
    senders: Vec<(IpAddr, u64, u64)>,
    clock: u64,
}

impl ReplayTable {
    /// The last sequence accepted from `src`, if remembered.
    pub fn last(&self, src: IpAddr) -> Option<u64> {
        self.senders
            .iter()
            .find(|s| s.0 == src)
            .map(|&(_, seq, _)| seq)
    }

    /// Accept `seq` from `src` if it is newer than the last one (then remember it), else `false`.
    /// In time mode a remembered mark outside the window is forgotten first (keepalived: it only
    /// orders packets the window already refuses, and forgetting it recovers a sender whose clock
    /// was stepped).
    pub fn accept(
        &mut self,
        src: IpAddr,
        seq: u64,
        now_secs: u64,
        anti_replay: AntiReplay,
    ) -> bool {
        self.clock += 1;
        let rank = self.clock;
        let idx = match self.senders.iter().position(|s| s.0 == src) {
            Some(i) => {
                let mark = self.senders[i].1;
                let expired = match anti_replay {
                    AntiReplay::Time { window_secs } => {
                        let age = (now_secs as u32).wrapping_sub((mark >> 32) as u32) as i32;
                        i64::from(age).abs() > i64::from(window_secs)
                    }
                    AntiReplay::Monotonic => false,
                };
                if !expired && !seq_after(seq, mark) {
                    return false;
                }
                i
            }
            None if self.senders.len() < REPLAY_SENDERS => {
                self.senders.push((src, seq, rank));
                return true;
            }
            None => {
                let (i, _) = self
                    .senders
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| s.2)
                    .expect("the table is full, so not empty");
                i
            }
        };
        self.senders[idx] = (src, seq, rank);
        true
    }
}

/// Verify a trailer (already split from the message) against `cfg`: trailer format, freshness (time
/// mode, before the HMAC so a flood of old captures costs no digest), key id, tag (constant time),
/// then the sender's sequence. `now` is the wall-clock time since the Unix epoch. Returns the clock
/// skew in seconds (ours minus the sender's; 0 in monotonic mode).
#[allow(clippy::too_many_arguments)]
pub fn verify(
    cfg: &HmacConfig,
    replay: &mut ReplayTable,
    version: Version,
    vrid: u8,
    src: IpAddr,
    message: &[u8],
    trailer: &[u8],
    now: std::time::Duration,
) -> Result<i64, AuthError> {
    let Some(t) = Trailer::parse(trailer) else {
        return Err(AuthError::Malformed {
            ext_type: trailer.first().copied().unwrap_or(0),
            reserved: 0,
        });
    };
    if t.ext_type != EXT_TYPE_SHA256 || t.reserved != 0 {
        return Err(AuthError::Malformed {
            ext_type: t.ext_type,
            reserved: t.reserved,
        });
    }
    let now_secs = now.as_secs();
    let mut skew = 0;
    if let AntiReplay::Time { window_secs } = cfg.anti_replay {
        skew = i64::from((now_secs as u32).wrapping_sub((t.seq >> 32) as u32) as i32);
        if skew.abs() > i64::from(window_secs) {
            return Err(AuthError::Stale {
                skew_secs: skew,
                window_secs,
            });
        }
    }
    let Some(key) = cfg.key(t.key_id) else {
        return Err(AuthError::UnknownKey(t.key_id));
    };
    let mut mac = new_mac(&key.bytes, version, vrid, src, message, &t);
    mac.update(&[0; TAG_LEN]);
    if mac.verify_truncated_left(&t.tag).is_err() {
        return Err(AuthError::BadTag);
    }
    if !replay.accept(src, t.seq, now_secs, cfg.anti_replay) {
        return Err(AuthError::Replay);
    }
    Ok(skew)
}

/// One instance's authentication: its settings and what it remembers between adverts (the send
/// sequence and each sender's last accepted sequence). The daemon keeps one per instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthState {
    pub config: Auth,
    pub replay: ReplayTable,
    pub sequencer: Sequencer,
    /// The clock skew (seconds, ours minus the sender's) of the last advert accepted in time mode
    /// whose skew passed half the window: keepalived's early warning to fix NTP before adverts go
    /// stale. The caller takes it (and logs it).
    pub skew_warning: Option<(IpAddr, i64)>,
}

impl AuthState {
    pub fn new(config: Auth) -> AuthState {
        AuthState {
            config,
            ..AuthState::default()
        }
    }

    /// New settings (a reload): keys and modes change, the sequences are kept so a peer that already
    /// heard us does not take our next advert for a replay.
    pub fn reconfigure(&mut self, config: Auth) {
        self.config = config;
    }

    /// What the next advert sent at `now` (wall-clock, since the Unix epoch) carries. Receive-only
    /// sends no trailer; a missing active key (a config bug the config layer refuses) sends none.
    pub fn tx(&mut self, now: std::time::Duration) -> crate::packet::TxAuth<'_> {
        use crate::packet::TxAuth;
        match &self.config {
            Auth::None => TxAuth::None,
            Auth::Pass(p) => TxAuth::Pass(p),
            Auth::Hmac(cfg) if cfg.mode == Mode::ReceiveOnly => TxAuth::None,
            Auth::Hmac(cfg) => match cfg.key(cfg.active_key) {
                Some(key) => TxAuth::Hmac {
                    key,
                    seq: self.sequencer.next(now, cfg.anti_replay),
                },
                None => TxAuth::None,
            },
        }
    }

    /// The v2 auth type adverts must carry.
    pub fn v2_auth_type(&self) -> u8 {
        match self.config {
            Auth::Pass(_) => AUTH_TYPE_PASS,
            _ => 0,
        }
    }

    /// Check a decoded advert's authentication (see [`crate::validate::validate_auth`]).
    pub fn check(
        &mut self,
        parts: &crate::packet::Parts<'_>,
        src: IpAddr,
        now: std::time::Duration,
    ) -> Result<(), AuthError> {
        let advert = &parts.advert;
        match &self.config {
            Auth::None => Ok(()),
            Auth::Pass(pw) if advert.version == Version::V2 => {
                let diff = pw
                    .iter()
                    .zip(parts.auth_data.iter())
                    .fold(0u8, |d, (a, b)| d | (a ^ b));
                if diff == 0 {
                    Ok(())
                } else {
                    Err(AuthError::PassMismatch)
                }
            }
            Auth::Pass(_) => Ok(()),
            Auth::Hmac(cfg) => match parts.trailer {
                None if cfg.mode == Mode::Enforce => Err(AuthError::Missing),
                None => Ok(()),
                Some(trailer) => {
                    let skew = verify(
                        cfg,
                        &mut self.replay,
                        advert.version,
                        advert.vrid,
                        src,
                        parts.message,
                        trailer,
                        now,
                    )?;
                    if let AntiReplay::Time { window_secs } = cfg.anti_replay {
                        if skew.abs() > i64::from(window_secs / 2) {
                            self.skew_warning = Some((src, skew));
                        }
                    }
                    Ok(())
                }
            },
        }
    }
}

/// The 8 bytes of a VRRPv2 password as keepalived sends them: the first 8 bytes, zero-padded.
pub fn pass_bytes(password: &[u8]) -> [u8; 8] {
    let mut b = [0; 8];
    let n = password.len().min(8);
    b[..n].copy_from_slice(&password[..n]);
    b
}

/// Decode a key value as keepalived reads one: `hex:` then hex digits (raw bytes), or else the ASCII
/// text itself. Trailing line ends are dropped (a hand-edited file). Errors say what is wrong.
pub fn parse_key_value(text: &[u8]) -> Result<Vec<u8>, String> {
    let mut end = text.len();
    while end > 0 && (text[end - 1] == b'\n' || text[end - 1] == b'\r') {
        end -= 1;
    }
    let text = &text[..end];
    let bytes = if let Some(hex) = text.strip_prefix(b"hex:") {
        if hex.len() % 2 != 0 {
            return Err(format!(
                "`hex:` needs an even number of hex digits, found {}",
                hex.len()
            ));
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = Vec::with_capacity(hex.len() / 2);
        for pair in hex.chunks_exact(2) {
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => {
                    return Err(format!(
                        "`hex:` holds a non-hex character in {:?}",
                        String::from_utf8_lossy(pair)
                    ))
                }
            }
        }
        out
    } else {
        if !text.is_ascii() || text.iter().any(|c| c.is_ascii_control()) {
            return Err("a key without `hex:` must be printable ASCII text".into());
        }
        text.to_vec()
    };
    if !(KEY_MIN..=KEY_MAX).contains(&bytes.len()) {
        return Err(format!(
            "the key is {} bytes; it must be {KEY_MIN}-{KEY_MAX} (e.g. `hex:` and the 64 digits of `openssl rand -hex 32`)",
            bytes.len()
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
