//! `[instance.announce]`: the gratuitous ARP / unsolicited NA burst after a claim.

use std::time::Duration;

use crate::config::error::Cx;
use crate::config::model::{AnnounceConfig, DEFAULT_ANNOUNCE_COUNT, DEFAULT_ANNOUNCE_SPACING};
use crate::config::raw::RawAnnounce;

pub(super) fn validate_announce(cx: &mut Cx<'_>, raw: &RawAnnounce) -> Option<AnnounceConfig> {
    let count = match &raw.count {
        None => Some(DEFAULT_ANNOUNCE_COUNT),
        Some(c) => cx
            .int_in(c, "count", 1..=100, "count is 1-100 packets per announcement (default 5); every claim is announced, so 0 is not allowed")
            .map(|c| c as u32),
    };
    let spacing = cx.duration(
        raw.spacing.as_ref(),
        "spacing",
        DEFAULT_ANNOUNCE_SPACING,
        Duration::from_millis(1),
        Duration::from_secs(10),
    );
    let refresh = match &raw.refresh {
        None => Some(None),
        Some(r) => cx
            .duration(
                Some(r),
                "refresh",
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_secs(3600),
            )
            .map(Some),
    };
    Some(AnnounceConfig {
        count: count?,
        spacing: spacing?,
        refresh: refresh?,
    })
}
