//! What both drivers (native and browser) share: opening the session from a store, reconnect
//! timing and fresh client ids.
//!
//! The only randomness of the drivers lives here; the session itself draws none.

use std::time::Duration;

use crate::protocol::{Quoted, QuotedChar};

/// Reconnect timing: exponential backoff from `initial` to `max`, each wait drawn at random from
/// its upper half (jitter, so that many clients do not reconnect in lockstep).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait before reconnect attempt `attempt` (0-based), with jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        let half = ceiling / 2;
        half + Duration::from_micros(random_below(half.as_micros() as u64 + 1))
    }
}

/// The builder settings both drivers share, written once inside each `SyncClientBuilder` impl
/// (the builders have fields of these names).
macro_rules! shared_builder_settings {
    () => {
        /// The client's stable id. Default: the one in the store, else a new random one.
        pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
            self.client_id = Some(client_id.into());
            self
        }

        /// An access token (sent in `hello`).
        pub fn token(mut self, token: impl Into<String>) -> Self {
            self.token = Some(token.into());
            self
        }

        /// How true conflicts are resolved when rebasing local edits (default: server wins).
        pub fn conflict_policy(mut self, policy: $crate::conflict::ConflictPolicy) -> Self {
            self.policy = policy;
            self
        }

        /// Reconnect timing.
        pub fn backoff(mut self, backoff: $crate::reconnect::Backoff) -> Self {
            self.backoff = backoff;
            self
        }
    };
}
pub(crate) use shared_builder_settings;

/// What a driver's builder collected, to open its session with.
pub(crate) struct SessionOptions<T> {
    pub document_id: String,
    pub client_id: Option<String>,
    pub token: Option<String>,
    pub policy: crate::conflict::ConflictPolicy,
    pub tune: Option<T>,
}

/// Opens the session a driver runs: from `saved` (what its store loaded) when that is this
/// document's (and this client's, when one was named), else new. Without a named client id, the
/// saved one is kept, else a random one is drawn.
pub(crate) fn open_session<T>(
    saved: Option<crate::queue::ClientState>,
    options: SessionOptions<T>,
) -> Result<crate::session::SyncSession, crate::session::SessionError>
where
    T: FnOnce(&mut crate::session::SessionConfig),
{
    use crate::session::{SessionConfig, SyncSession};
    let saved = saved.filter(|saved| saved.document_id == options.document_id);
    let client_id = options
        .client_id
        .or_else(|| saved.as_ref().map(|s| s.client_id.clone()))
        .unwrap_or_else(random_client_id);
    let mut config = SessionConfig::new(options.document_id, client_id);
    config.token = options.token;
    config.policy = options.policy;
    if let Some(tune) = options.tune {
        tune(&mut config);
    }
    match saved {
        Some(saved) if saved.client_id == config.client_id => SyncSession::restore(config, saved),
        _ => Ok(SyncSession::new(config)),
    }
}

/// A new random client id (`c-` and 16 alphanumerics).
pub(crate) fn random_client_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut id = String::from("c-");
    id.extend((0..16).map(|_| ALPHABET[random_below(ALPHABET.len() as u64) as usize] as char));
    id
}

/// A random number in `0..bound` (`bound` > 0).
#[cfg(not(target_arch = "wasm32"))]
fn random_below(bound: u64) -> u64 {
    fastrand::u64(0..bound)
}

/// A random number in `0..bound` (`bound` > 0), from the JavaScript engine's `Math.random`.
#[cfg(target_arch = "wasm32")]
fn random_below(bound: u64) -> u64 {
    ((js_sys::Math::random() * bound as f64) as u64).min(bound - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_up_to_the_max() {
        let backoff = Backoff::default();
        for attempt in 0..40 {
            let ceiling = (backoff.initial * 2u32.pow(attempt.min(16))).min(backoff.max);
            let delay = backoff.delay(attempt);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{attempt}: {delay:?}"
            );
        }
        let id = random_client_id();
        assert_eq!(id.len(), 18);
        assert!(id[2..].chars().all(|c| c.is_ascii_alphanumeric()));
    }
}

/// What `SyncClient::edit` takes: an RFC 6902 patch as parsed operations, a `json_patch::Patch`,
/// or plain JSON (a `serde_json::Value`, as `json!([...])` writes it).
pub trait IntoPatch {
    /// The operations, or why the JSON is not an RFC 6902 patch.
    fn into_patch(self) -> Result<Vec<json_patch::PatchOperation>, String>;
}

impl IntoPatch for Vec<json_patch::PatchOperation> {
    fn into_patch(self) -> Result<Vec<json_patch::PatchOperation>, String> {
        Ok(self)
    }
}

impl IntoPatch for json_patch::Patch {
    fn into_patch(self) -> Result<Vec<json_patch::PatchOperation>, String> {
        Ok(self.0)
    }
}

impl IntoPatch for serde_json::Value {
    fn into_patch(self) -> Result<Vec<json_patch::PatchOperation>, String> {
        crate::diff::read_patch(self).map_err(|err| format!("not an RFC 6902 patch: {err}"))
    }
}

/// The WebSocket URL of an endpoint (`suffix`: `/sync`, or `/sync/{documentId}`) of the server at
/// `server`: `ws://HOST:PORT` or `wss://HOST`, optionally with the path a proxy serves it under.
/// The error says what is wrong, for the app's developer: caught when the client is made, not
/// after minutes of reconnecting to nowhere.
pub fn endpoint(server: &str, suffix: &str) -> Result<String, String> {
    let quoted = Quoted(server);
    let usage = "give the server's address, like ws://127.0.0.1:8080 or wss://example.com";
    let Some((scheme, rest)) = server.split_once("://") else {
        return Err(format!("{quoted} is not a URL: {usage}"));
    };
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "ws" | "wss" => {}
        "http" | "https" => {
            let wanted = if scheme == "https" { "wss" } else { "ws" };
            return Err(format!(
                "{quoted}: a WebSocket URL starts with {wanted}://, not {scheme}://"
            ));
        }
        _ => return Err(format!("{quoted}: unknown scheme {scheme}://; {usage}")),
    }
    let rest = rest.trim_end_matches('/');
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("{quoted} names no host; {usage}"));
    }
    if let Some(bad) = rest
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '?' | '#'))
    {
        return Err(format!(
            "{quoted} holds {}: {usage} (a token goes in the options, not the URL)",
            QuotedChar(bad)
        ));
    }
    let path = &rest[host.len()..];
    if path == "/sync" || path.starts_with("/sync/") {
        return Err(format!(
            "{quoted} names an endpoint: {usage}; the client adds /sync itself"
        ));
    }
    Ok(format!("{scheme}://{rest}{suffix}"))
}

#[cfg(test)]
mod endpoint_tests {
    use super::endpoint;

    #[test]
    fn server_addresses_become_endpoints_and_mistakes_are_explained() {
        let ok = |server: &str| endpoint(server, "/sync").unwrap();
        assert_eq!(ok("ws://127.0.0.1:8080"), "ws://127.0.0.1:8080/sync");
        assert_eq!(ok("ws://127.0.0.1:8080/"), "ws://127.0.0.1:8080/sync");
        assert_eq!(
            ok("WSS://example.com/eventsync/"),
            "wss://example.com/eventsync/sync"
        );
        let err = |server: &str| endpoint(server, "/sync").unwrap_err();
        assert!(err("not a url").contains("is not a URL"));
        assert!(err("http://127.0.0.1:8080").contains("starts with ws://"));
        assert!(err("https://example.com").contains("starts with wss://"));
        assert!(err("ftp://example.com").contains("unknown scheme"));
        assert!(err("ws://").contains("names no host"));
        assert!(err("ws://:8080").contains("names no host"));
        assert!(err("ws://host/sync/todo").contains("adds /sync itself"));
        assert!(err("ws://host:8080/sync").contains("adds /sync itself"));
        assert!(err("ws://host?token=x").contains("token goes in the options"));
        assert!(err("ws://my host").contains("holds \" \""));
    }
}
