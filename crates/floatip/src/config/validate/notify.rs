//! `[instance.notify]`: the hooks run on each transition.

use std::time::Duration;

use toml::Spanned;

use crate::config::error::Cx;
use crate::config::model::{NotifyConfig, DEFAULT_NOTIFY_TIMEOUT};
use crate::config::raw::{RawArgv, RawNotify};

pub(super) fn validate_notify(cx: &mut Cx<'_>, raw: &RawNotify) -> Option<NotifyConfig> {
    let mut ok = true;
    let mut hook = |value: &Option<Spanned<RawArgv>>, key: &str| -> Option<Vec<String>> {
        let v = value.as_ref()?;
        let argv = cx.argv(v, key);
        ok &= argv.is_some();
        argv
    };
    let master = hook(&raw.master, "master");
    let backup = hook(&raw.backup, "backup");
    let fault = hook(&raw.fault, "fault");
    let stop = hook(&raw.stop, "stop");
    let timeout = cx.duration(
        raw.timeout.as_ref(),
        "timeout",
        DEFAULT_NOTIFY_TIMEOUT,
        Duration::from_millis(100),
        Duration::from_secs(3600),
    );
    Some(NotifyConfig {
        master,
        backup,
        fault,
        stop,
        timeout: timeout?,
    })
    .filter(|_| ok)
}
