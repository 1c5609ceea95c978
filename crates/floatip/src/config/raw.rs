//! Stage 1: the file as serde reads it. Every table `deny_unknown_fields`, every value [`Spanned`] so it
//! keeps its position, numbers kept wide so that `vrid = 300` is our range error and not serde's. The
//! fields are the keys of [`super::keys`]; a test checks that both list the same names.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) daemon: Option<RawDaemon>,
    #[serde(default)]
    pub(super) instance: Vec<Spanned<RawInstance>>,
    #[serde(default)]
    pub(super) group: Vec<Spanned<RawGroup>>,
    pub(super) etcd: Option<Spanned<RawEtcd>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEtcd {
    pub(super) endpoints: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) cert_file: Option<Spanned<String>>,
    pub(super) key_file: Option<Spanned<String>>,
    pub(super) prefix: Option<Spanned<String>>,
    pub(super) lease_ttl: Option<Spanned<RawDuration>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    pub(super) name: Option<Spanned<String>>,
    pub(super) instances: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub(super) socket: Option<Spanned<String>>,
    pub(super) http: Option<Spanned<String>>,
    pub(super) metrics: Option<Spanned<String>>,
    pub(super) state_dir: Option<Spanned<String>>,
    pub(super) log_level: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInstance {
    pub(super) name: Option<Spanned<String>>,
    pub(super) interface: Option<Spanned<String>>,
    pub(super) vrid: Option<Spanned<i64>>,
    pub(super) priority: Option<Spanned<i64>>,
    pub(super) version: Option<Spanned<i64>>,
    pub(super) advert_interval: Option<Spanned<RawDuration>>,
    pub(super) preempt: Option<Spanned<bool>>,
    pub(super) preempt_delay: Option<Spanned<RawDuration>>,
    pub(super) addresses: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) unicast_peers: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) checksum: Option<Spanned<String>>,
    pub(super) announce: Option<RawAnnounce>,
    pub(super) address_lifetime: Option<Spanned<RawDuration>>,
    pub(super) witness: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) track_interfaces: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) vmac: Option<Spanned<bool>>,
    pub(super) vmac_interface: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) check: Vec<Spanned<RawCheck>>,
    pub(super) notify: Option<RawNotify>,
    pub(super) election: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) track_file: Vec<Spanned<RawTrackFile>>,
    pub(super) auth: Option<Spanned<RawAuth>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrackFile {
    pub(super) path: Option<Spanned<String>>,
    pub(super) weight: Option<Spanned<i64>>,
    pub(super) name: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    #[serde(rename = "type")]
    pub(super) kind: Option<Spanned<String>>,
    pub(super) password: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) key: Vec<Spanned<RawAuthKey>>,
    pub(super) active_key: Option<Spanned<i64>>,
    pub(super) mode: Option<Spanned<String>>,
    pub(super) anti_replay: Option<Spanned<String>>,
    pub(super) time_window: Option<Spanned<RawDuration>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuthKey {
    pub(super) id: Option<Spanned<i64>>,
    pub(super) file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnnounce {
    pub(super) count: Option<Spanned<i64>>,
    pub(super) spacing: Option<Spanned<RawDuration>>,
    pub(super) refresh: Option<Spanned<RawDuration>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    pub(super) name: Option<Spanned<String>>,
    pub(super) kind: Option<Spanned<String>>,
    pub(super) target: Option<Spanned<String>>,
    pub(super) url: Option<Spanned<String>>,
    pub(super) expect_status: Option<Spanned<i64>>,
    pub(super) expect_body: Option<Spanned<String>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) tls_server_name: Option<Spanned<String>>,
    pub(super) insecure_skip_verify: Option<Spanned<bool>>,
    pub(super) command: Option<Spanned<RawArgv>>,
    pub(super) process: Option<Spanned<String>>,
    pub(super) args: Option<Spanned<String>>,
    pub(super) min: Option<Spanned<i64>>,
    pub(super) max: Option<Spanned<i64>>,
    pub(super) interval: Option<Spanned<RawDuration>>,
    pub(super) timeout: Option<Spanned<RawDuration>>,
    pub(super) rise: Option<Spanned<i64>>,
    pub(super) fall: Option<Spanned<i64>>,
    pub(super) weight: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub(super) master: Option<Spanned<RawArgv>>,
    pub(super) backup: Option<Spanned<RawArgv>>,
    pub(super) fault: Option<Spanned<RawArgv>>,
    pub(super) stop: Option<Spanned<RawArgv>>,
    pub(super) timeout: Option<Spanned<RawDuration>>,
}

/// A duration as written: a string to parse, or a bare number that we refuse with a hint (not a type error).
pub(super) enum RawDuration {
    Text(String),
    Number(String),
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"1s\" or \"250ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration::Number(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration::Number(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDuration, E> {
                Ok(RawDuration::Number(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A command as written: the argv array we want, or a single string we refuse with a hint.
pub(super) enum RawArgv {
    List(Vec<Spanned<String>>),
    Text(String),
}

impl<'de> Deserialize<'de> for RawArgv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawArgv;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a command as an array of strings, e.g. [\"/usr/local/bin/x\", \"--flag\"]",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawArgv, E> {
                Ok(RawArgv::Text(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawArgv, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<Spanned<String>>()? {
                    argv.push(arg);
                }
                Ok(RawArgv::List(argv))
            }
        }
        d.deserialize_any(V)
    }
}
