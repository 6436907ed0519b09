//! Webhooks: every appended event POSTed, signed, to one URL, from a durable outbox.
//!
//! With `--webhook URL --webhook-secret SECRET`, the store writes one `webhook_outbox` row per
//! event in the transaction that appends it ([`EventStore::enable_outbox`]), whatever made the
//! event (a client edit, an HTTP write, a write of the `documents` table by another program).
//! [`run`] delivers those rows:
//!
//! - **Body**: `{"type":"event","documentId":ID,"event":EVENT}` ([`payload`]), `EVENT` being the
//!   event as the protocol writes it (`id`, `documentId`, `sequenceNum`, `operation`, `diff`,
//!   `clientId`, ...).
//! - **Headers**: `Content-Type: application/json`, `Eventsync-Event-Id` (the event's `id`: the
//!   receiver's idempotency key), `Eventsync-Timestamp` (Unix seconds of this attempt) and
//!   `Eventsync-Signature: v1=HEX`, the lowercase hex HMAC-SHA256 of `TIMESTAMP.BODY` keyed with
//!   the secret ([`sign`]). Receivers recompute it over the raw body, compare in constant time
//!   and refuse old timestamps ([`verify`]).
//! - **At least once**: a row is deleted only after a 2xx answer. Anything else (another status,
//!   no connection, no answer within 10 s) is a failure: the row is retried after 0.5 s,
//!   doubling up to 60 s, with ±20 % jitter, forever, with a warning logged each time. A crash
//!   between the receiver's 2xx and the delete sends the event again: receivers deduplicate by
//!   `Eventsync-Event-Id`.
//! - **In order per document**: only the first row (lowest `sequenceNum`) of a document is ever
//!   leased, so `sequenceNum` N+1 of a document is sent only after N was acknowledged. Documents
//!   go in parallel, at most [`MAX_IN_FLIGHT`] at once.
//!
//! Leases: a process delivering a row holds it for [`LEASE`] (longer than a request may take),
//! so that several server processes on one PostgreSQL database each deliver different documents.
//! A process that dies leaves its leases to expire (at once on SQLite, which has one process:
//! leases are cleared when the outbox is enabled); one that stops releases them.
//!
//! The worker wakes when this process commits an append, and polls every [`POLL`] for the
//! appends of other processes and for retries that fell due.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::store::{EventStore, OutboxEntry};

/// Documents delivered at once, at most.
pub const MAX_IN_FLIGHT: usize = 32;
/// How long a request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a process holds a row it delivers (more than [`REQUEST_TIMEOUT`]).
pub const LEASE: Duration = Duration::from_secs(30);
/// How often the worker looks for rows when nothing woke it.
pub const POLL: Duration = Duration::from_millis(500);
/// The first retry's delay; each further failure doubles it, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest delay between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How old a timestamp [`verify`] accepts.
pub const TOLERANCE: Duration = Duration::from_secs(300);

/// Where to deliver and how to sign.
#[derive(Clone)]
pub struct Webhook {
    /// The receiver (`http://` or `https://`).
    pub url: reqwest::Url,
    /// The signing secret.
    pub secret: String,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url.as_str())
            .field("secret", &"***")
            .finish()
    }
}

impl Webhook {
    /// Checks the flags: an `http(s)` URL and a non-empty secret.
    pub fn new(url: &str, secret: Option<&str>) -> Result<Self, String> {
        let secret = match secret {
            Some(secret) if !secret.is_empty() => secret.to_owned(),
            _ => return Err("--webhook needs --webhook-secret (EVENTSYNC_WEBHOOK_SECRET)".into()),
        };
        let url = reqwest::Url::parse(url).map_err(|err| format!("--webhook {url}: {err}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "--webhook {url}: the URL must be http:// or https://"
            ));
        }
        Ok(Webhook { url, secret })
    }
}

/// The request body for an event stored as `event` (JSON text) in `document_id`.
pub fn payload(document_id: &str, event: &str) -> String {
    let document_id = serde_json::to_string(document_id).expect("a string serializes");
    format!(r#"{{"type":"event","documentId":{document_id},"event":{event}}}"#)
}

/// The `Eventsync-Signature` value: `v1=` and the hex HMAC-SHA256 of `TIMESTAMP.BODY`.
pub fn sign(secret: &str, timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(3 + 64);
    out.push_str("v1=");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// What a receiver checks: the signature matches (constant time) and the timestamp is at most
/// [`TOLERANCE`] away from `now` (Unix seconds).
pub fn verify(secret: &str, timestamp: &str, signature: &str, body: &str, now: u64) -> bool {
    let Ok(at) = timestamp.parse::<u64>() else {
        return false;
    };
    if now.abs_diff(at) > TOLERANCE.as_secs() {
        return false;
    }
    let Some(hex) = signature.strip_prefix("v1=") else {
        return false;
    };
    let Some(given) = decode_hex(hex) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac.verify_slice(&given).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The delay before the next attempt after `attempts` failures (this one included, so at
/// least 1), scaled by `jitter` in `[0, 1)`: 0.5 s doubling, capped at 60 s, ±20 %.
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    let base = FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF);
    base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
        .min(MAX_BACKOFF)
}

/// A number in `[0, 1)` that differs between calls (jitter only: not for secrets).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(now().as_nanos());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn now_ms() -> i64 {
    i64::try_from(now().as_millis()).unwrap_or(i64::MAX)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Delivers the outbox until `shutdown` turns true; `appended` is what the store signals after
/// each committed append ([`EventStore::enable_outbox`]).
pub async fn run(
    store: Arc<dyn EventStore>,
    appended: Arc<Notify>,
    webhook: Webhook,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "webhooks: no HTTP client; nothing will be delivered");
            return;
        }
    };
    let owner = owner_id();
    let delivery = Arc::new(Delivery {
        store: store.clone(),
        client,
        webhook,
        owner: owner.clone(),
    });
    // Not the whole URL: it may hold credentials.
    tracing::info!(
        host = delivery.webhook.url.host_str().unwrap_or_default(),
        path = delivery.webhook.url.path(),
        "webhooks on"
    );
    let mut tasks = JoinSet::new();
    while !*shutdown.borrow() {
        let free = MAX_IN_FLIGHT.saturating_sub(tasks.len());
        let mut pause = POLL;
        if free > 0 {
            let now = now_ms();
            match store
                .claim_outbox(&owner, now, now.saturating_add(millis(LEASE)), free)
                .await
            {
                Ok(entries) => {
                    for entry in entries {
                        let delivery = delivery.clone();
                        tasks.spawn(async move { delivery.deliver(entry).await });
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "webhooks: the outbox could not be read");
                    pause = Duration::from_secs(1);
                }
            }
        }
        tokio::select! {
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = appended.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break; // the server is gone
                }
            }
        }
    }
    // Requests in flight are abandoned: their rows are sent again (at least once).
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    if let Err(error) = store.release_outbox(&owner).await {
        tracing::warn!(%error, "webhooks: leases not released (they expire)");
    }
}

/// What each delivery task shares.
struct Delivery {
    store: Arc<dyn EventStore>,
    client: reqwest::Client,
    webhook: Webhook,
    owner: String,
}

impl Delivery {
    /// One attempt at one row: deleted on a 2xx, rescheduled otherwise.
    async fn deliver(&self, entry: OutboxEntry) {
        let body = payload(&entry.document_id, &entry.body);
        let event_id = serde_json::from_str::<serde_json::Value>(&entry.body)
            .ok()
            .and_then(|event| event.get("id")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        let timestamp = now().as_secs();
        let signature = sign(&self.webhook.secret, timestamp, &body);
        let sent = self
            .client
            .post(self.webhook.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Eventsync-Event-Id", &event_id)
            .header("Eventsync-Timestamp", timestamp.to_string())
            .header("Eventsync-Signature", signature)
            .body(body)
            .send()
            .await;
        let failure = match sent {
            Ok(response) if response.status().is_success() => {
                match self.store.finish_outbox(entry.id, &self.owner).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(
                        document = %entry.document_id,
                        seq = entry.seq,
                        "webhook delivered after its lease expired: it may be sent again"
                    ),
                    Err(error) => tracing::warn!(
                        document = %entry.document_id,
                        seq = entry.seq,
                        %error,
                        "webhook delivered but not marked: it will be sent again"
                    ),
                }
                return;
            }
            Ok(response) => format!("HTTP {}", response.status()),
            Err(error) => error.without_url().to_string(),
        };
        let attempts = entry.attempts.saturating_add(1);
        let delay = backoff(attempts, jitter());
        tracing::warn!(
            document = %entry.document_id,
            seq = entry.seq,
            attempts,
            retry_in_ms = delay.as_millis() as u64,
            error = %failure,
            "webhook delivery failed"
        );
        let due = now_ms().saturating_add(millis(delay));
        if let Err(error) = self.store.retry_outbox(entry.id, &self.owner, due).await {
            // The lease expires and the row is tried again then.
            tracing::warn!(%error, "webhooks: a failed delivery could not be rescheduled");
        }
    }
}

/// This worker's name in the lease column.
fn owner_id() -> String {
    format!(
        "{}-{}-{:x}",
        hostname(),
        std::process::id(),
        (jitter() * (1u64 << 53) as f64) as u64
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector the README's JavaScript verification snippet is tested with
    /// (`js/test/webhook.test.mjs`): keep both in step.
    #[test]
    fn signs_the_readme_vector() {
        let body = payload(
            "todo",
            r#"{"id":"evt-1","documentId":"todo","sequenceNum":1,"operation":"create","diff":null,"vectorClock":{"alice":1},"clientId":"alice"}"#,
        );
        assert_eq!(
            body,
            r#"{"type":"event","documentId":"todo","event":{"id":"evt-1","documentId":"todo","sequenceNum":1,"operation":"create","diff":null,"vectorClock":{"alice":1},"clientId":"alice"}}"#
        );
        let signature = sign("whsec_test", 1_700_000_000, &body);
        assert_eq!(
            signature,
            "v1=3bd740d26d04635c88d03ef136562ab6d90da365fdc1427914ecb8fd9d56d28d"
        );
        assert!(verify(
            "whsec_test",
            "1700000000",
            &signature,
            &body,
            1_700_000_100
        ));
        assert!(!verify(
            "wrong",
            "1700000000",
            &signature,
            &body,
            1_700_000_100
        ));
        assert!(!verify(
            "whsec_test",
            "1700000000",
            &signature,
            &body,
            1_700_000_301
        ));
        assert!(!verify(
            "whsec_test",
            "1700000001",
            &signature,
            &body,
            1_700_000_100
        ));
        assert!(!verify(
            "whsec_test",
            "1700000000",
            &signature,
            &format!("{body} "),
            1_700_000_100
        ));
    }

    #[test]
    fn backs_off_doubling_to_a_minute() {
        assert_eq!(backoff(1, 0.5), Duration::from_millis(500));
        assert_eq!(backoff(2, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(4, 0.5), Duration::from_secs(4));
        assert_eq!(backoff(30, 0.5), MAX_BACKOFF);
        assert_eq!(backoff(30, 0.99), MAX_BACKOFF);
        assert!(backoff(1, 0.0) >= Duration::from_millis(400));
        assert!(backoff(1, 0.999) < Duration::from_millis(600));
    }

    #[test]
    fn refuses_a_webhook_without_a_secret_or_with_another_scheme() {
        assert!(Webhook::new("http://127.0.0.1:9/hook", None).is_err());
        assert!(Webhook::new("http://127.0.0.1:9/hook", Some("")).is_err());
        assert!(Webhook::new("ftp://127.0.0.1/hook", Some("s")).is_err());
        assert!(Webhook::new("https://example.com/hook", Some("s")).is_ok());
    }
}
