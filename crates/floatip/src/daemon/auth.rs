//! Advert authentication at run time: the wall clock the auth_hmac sequence and freshness window
//! are read against, and the rate limit of the log lines for adverts authentication refused (every
//! drop is counted by reason in the instance's drop counters; the log says it at most once per reason
//! every [`LOG_EVERY`]).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// At most one log line per refusal reason per instance this often (the counters have the rest).
pub(super) const LOG_EVERY: Duration = Duration::from_secs(30);

/// The wall-clock time since the Unix epoch (a clock before 1970 reads as the epoch).
pub(super) fn wall_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// When each reason was last logged, and how many were refused quietly since.
#[derive(Debug, Default)]
pub(super) struct AuthLog {
    last: HashMap<&'static str, (Instant, u64)>,
}

impl AuthLog {
    /// Whether a refusal for `reason` at `now` is logged; `Some(n)`: yes, and `n` more were refused
    /// since the last line.
    pub(super) fn note(&mut self, now: Instant, reason: &'static str) -> Option<u64> {
        match self.last.get_mut(reason) {
            Some((at, quiet)) if now.saturating_duration_since(*at) < LOG_EVERY => {
                *quiet += 1;
                None
            }
            Some((at, quiet)) => {
                let n = *quiet;
                *at = now;
                *quiet = 0;
                Some(n)
            }
            None => {
                self.last.insert(reason, (now, 0));
                Some(0)
            }
        }
    }
}

/// Whether a drop reason is authentication's (PASS, auth_hmac, or a v2 auth type that is not ours).
pub(super) fn is_auth(label: &str) -> bool {
    label.starts_with("auth_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_reason_per_period() {
        let mut log = AuthLog::default();
        let t = Instant::now();
        assert_eq!(log.note(t, "auth_bad_tag"), Some(0));
        assert_eq!(log.note(t + Duration::from_secs(1), "auth_bad_tag"), None);
        assert_eq!(log.note(t + Duration::from_secs(2), "auth_bad_tag"), None);
        assert_eq!(log.note(t + Duration::from_secs(2), "auth_replay"), Some(0));
        assert_eq!(log.note(t + LOG_EVERY, "auth_bad_tag"), Some(2));
        assert_eq!(log.note(t + LOG_EVERY, "auth_bad_tag"), None);
    }

    #[test]
    fn auth_labels() {
        assert!(is_auth("auth_missing") && is_auth("auth_type") && is_auth("auth_pass_mismatch"));
        assert!(!is_auth("ttl") && !is_auth("address_set"));
    }
}
