//! The control protocol: the requests the CLI sends and the responses the daemon gives, as
//! newline-delimited JSON over a Unix stream socket, one request line and one response line per
//! connection (an `events` request: then the stream's records, see [`super::events`]). One definition
//! shared by the daemon and the CLI.
//!
//! ```text
//! -> {"version":1,"request":{"type":"status","instance":null}}
//! <- {"version":1,"response":{"type":"status","instances":[...]}}
//! ```

use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use super::status::{GroupStatus, InstanceStatus};

/// Bumped when a request or response changes incompatibly. Adding a field to [`InstanceStatus`] is
/// compatible and does not bump it.
pub const PROTOCOL_VERSION: u32 = 1;
/// The longest request line the daemon reads. A status request is about 60 bytes.
pub const MAX_REQUEST: usize = 64 * 1024;
/// How long either side waits for the other before giving up.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the CLI asks the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// One instance (`Some(name)`) or all of them.
    Status { instance: Option<String> },
    /// Become master now and stay preferred until `Auto`.
    Takeover { instance: String },
    /// Step down and never claim until `Auto`. Without `force` the daemon refuses when no peer was heard
    /// recently (releasing would leave the VIP unowned).
    Release { instance: String, force: bool },
    /// Back to the configured behaviour.
    Auto { instance: String },
    /// Re-read the configuration file.
    Reload,
    /// Turn this connection into the event stream of one instance or group (`Some(name)`) or of all:
    /// one response line, then one [`super::events::EventRecord`] per line (see [`super::events`]).
    Events { name: Option<String> },
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    Status {
        instances: Vec<InstanceStatus>,
        /// The `[[group]]`s (absent without any, and from daemons that predate groups).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        groups: Vec<GroupStatus>,
    },
    /// A command was carried out; `message` says what happened, for a person.
    Done { message: String },
    /// A command was refused or failed; `message` says why and what to do.
    Error { message: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct RequestEnvelope {
    version: u32,
    request: Request,
}

#[derive(Debug, Serialize, Deserialize)]
struct ResponseEnvelope {
    version: u32,
    response: Response,
}

/// One request as the line the client sends (without the newline).
pub fn encode_request(request: &Request) -> String {
    serde_json::to_string(&RequestEnvelope {
        version: PROTOCOL_VERSION,
        request: request.clone(),
    })
    .expect("a request always serializes")
}

/// One response as the line the daemon sends (without the newline).
pub fn encode_response(response: &Response) -> String {
    serde_json::to_string(&ResponseEnvelope {
        version: PROTOCOL_VERSION,
        response: response.clone(),
    })
    .expect("a response always serializes")
}

pub(crate) const REQUEST_EXAMPLE: &str =
    r#"{"version":1,"request":{"type":"status","instance":null}}"#;

/// Parses one request line. The `Err` is the message of the [`Response::Error`] to send back.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
        format!("malformed request (not JSON: {e}); send one JSON object per line, like {REQUEST_EXAMPLE}")
    })?;
    let version = value.get("version").ok_or_else(|| {
        format!("malformed request: no \"version\" field; expected {REQUEST_EXAMPLE}")
    })?;
    if version.as_u64() != Some(u64::from(PROTOCOL_VERSION)) {
        return Err(format!(
            "control protocol version {version} is not supported: this daemon speaks version \
             {PROTOCOL_VERSION}; use the floatip CLI from the same release as the running daemon \
             (after an upgrade, restart the daemon)"
        ));
    }
    let env: RequestEnvelope = serde_json::from_value(value).map_err(|e| {
        format!("malformed request: {e}; expected something like {REQUEST_EXAMPLE}")
    })?;
    Ok(env.request)
}

/// Parses one response line, as the client receives it.
pub fn parse_response(line: &[u8]) -> anyhow::Result<Response> {
    let value: serde_json::Value = serde_json::from_slice(line)
        .context("the daemon sent something that is not JSON (is that socket really floatip's?)")?;
    let version = value.get("version").and_then(|v| v.as_u64());
    if version != Some(u64::from(PROTOCOL_VERSION)) {
        bail!(
            "the daemon speaks control protocol version {}, this floatip speaks {PROTOCOL_VERSION}; \
             run the floatip CLI from the same release as the daemon (after an upgrade, restart the daemon)",
            version.map_or_else(|| "(none)".to_string(), |v| v.to_string())
        );
    }
    let env: ResponseEnvelope = serde_json::from_value(value)
        .context("the daemon sent a response this floatip cannot read")?;
    Ok(env.response)
}
