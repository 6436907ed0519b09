//! The limits of a server (docs/PROTOCOL.md section 11), a per-connection rate limiter and the
//! validation of client-supplied identifiers (section 1).

use crate::protocol::{ClientMessage, Quoted, QuotedChar, SERVER_CLIENT_ID};

/// Longest `documentId` or `clientId`, in characters (section 1).
pub const MAX_ID_LEN: usize = 128;

/// Limits of the server. Defaults: the reference server's values from docs/PROTOCOL.md 11 and 12
/// (1 MiB frames and bodies, JSON depth 128, pages of 1000 events by default and 10000 at most)
/// and a rate of 100 messages per second per connection with a burst of 200.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest client frame or HTTP request body, in bytes (`too_large` / 413 above it).
    pub max_frame_bytes: usize,
    /// Deepest JSON nesting of a frame, body or resulting document (the root is level 1).
    pub max_depth: usize,
    /// Sustained rate of client messages per connection.
    pub messages_per_second: u32,
    /// Messages a connection may send at once before the sustained rate applies.
    pub burst: u32,
    /// Most events in one page (`GET /api/events` `limit` above it is treated as it).
    pub max_page: usize,
    /// Events in a page when the client names no `limit`, and in a sync answer's page.
    pub default_page: usize,
    /// How long a WebSocket client has to send `hello`, in milliseconds.
    pub hello_timeout_ms: u64,
    /// Most documents open at once on one connection of protocol version 2.
    pub max_documents: usize,
    /// Largest presence state, in bytes of its JSON (18.7: `too_large` above it).
    pub max_presence_bytes: usize,
    /// A connection silent this long loses its presence (18.7), in milliseconds.
    pub presence_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 1 << 20,
            max_depth: crate::diff::MAX_DEPTH,
            messages_per_second: 100,
            burst: 200,
            max_page: 10_000,
            default_page: 1000,
            hello_timeout_ms: 10_000,
            max_documents: 10_000,
            max_presence_bytes: crate::protocol::MAX_PRESENCE_BYTES,
            presence_timeout_ms: crate::protocol::PRESENCE_TIMEOUT_MS,
        }
    }
}

impl Limits {
    /// The page size for a requested `limit` (12.2): the default when none is given, at most
    /// `max_page`. `Some(0)` stays 0 (a cheap way to read `headSeq`).
    pub fn page_size(&self, requested: Option<usize>) -> usize {
        requested.unwrap_or(self.default_page).min(self.max_page)
    }

    /// A fresh rate limiter with these limits, for one connection.
    pub fn rate_limiter(&self) -> RateLimiter {
        RateLimiter::new(self.messages_per_second, self.burst)
    }
}

/// Milli-tokens per token: the bucket counts thousandths so that refill is exact integer math.
const MILLI: u64 = 1000;

/// A token bucket: holds up to `burst` tokens (at least 1), starts full, gains `per_second`
/// tokens per second, and each allowed message takes one. Time is passed in as milliseconds from
/// any fixed origin (no clock reads inside); time going backwards adds nothing.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    /// Tokens gained per second (= milli-tokens per millisecond).
    per_second: u64,
    /// Capacity, in milli-tokens.
    capacity: u64,
    /// Current content, in milli-tokens.
    tokens: u64,
    /// The latest time seen.
    last_ms: Option<u64>,
}

impl RateLimiter {
    /// A full bucket of `burst` tokens (a `burst` of 0 is taken as 1) refilled at `per_second`.
    /// With `per_second` 0 the bucket never refills.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let capacity = u64::from(burst.max(1)) * MILLI;
        RateLimiter {
            per_second: u64::from(per_second),
            capacity,
            tokens: capacity,
            last_ms: None,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = match self.last_ms {
            Some(last) => now_ms.saturating_sub(last),
            None => 0,
        };
        self.last_ms = Some(self.last_ms.map_or(now_ms, |last| last.max(now_ms)));
        let gained = elapsed.saturating_mul(self.per_second);
        self.tokens = self.tokens.saturating_add(gained).min(self.capacity);
    }

    /// Takes one token if there is one: true when the message may pass.
    pub fn allow(&mut self, now_ms: u64) -> bool {
        self.refill(now_ms);
        if self.tokens >= MILLI {
            self.tokens -= MILLI;
            true
        } else {
            false
        }
    }

    /// Milliseconds from the latest time seen until [`allow`](Self::allow) would pass (0 when it
    /// would pass now; `None` when it never will, with a rate of 0). For `Retry-After`.
    pub fn retry_after_ms(&self) -> Option<u64> {
        let missing = MILLI.saturating_sub(self.tokens);
        if missing == 0 {
            Some(0)
        } else if self.per_second == 0 {
            None
        } else {
            Some(missing.div_ceil(self.per_second))
        }
    }
}

/// The rate limits of one connection. Every frame draws a token from the frame bucket
/// (`messages_per_second`, `burst`), but on a version 2 connection the frames that read a
/// document (`open`, `sync`, `close`) draw from a bucket as large as the documents a connection
/// may have open (`max_documents`, at least `burst`, refilled at the same rate): an app that opens and syncs its
/// documents when it starts is not slowed, while edits (`submit`) keep the frame bucket's pace.
#[derive(Clone, Debug)]
pub struct ConnectionLimiter {
    frames: RateLimiter,
    documents: RateLimiter,
}

impl ConnectionLimiter {
    /// Full buckets for a new connection with `limits`.
    pub fn new(limits: &Limits) -> Self {
        let documents = u32::try_from(limits.max_documents)
            .unwrap_or(u32::MAX)
            .max(limits.burst);
        ConnectionLimiter {
            frames: limits.rate_limiter(),
            documents: RateLimiter::new(limits.messages_per_second, documents),
        }
    }

    /// Whether a frame may pass at `now`: `frame` is its document and message (`None`: it did
    /// not decode), `multiplexed` tells a version 2 connection.
    pub fn allow(
        &mut self,
        now: u64,
        frame: Option<(Option<&str>, &ClientMessage)>,
        multiplexed: bool,
    ) -> bool {
        match frame {
            Some((
                Some(_),
                ClientMessage::Open | ClientMessage::Close | ClientMessage::Sync { .. },
            )) if multiplexed => self.documents.allow(now),
            _ => self.frames.allow(now),
        }
    }
}

/// Checks the identifier rules of section 1: 1 to 128 characters, each one of
/// `A-Z a-z 0-9 . _ ~ -`, and neither `.` nor `..`. The error is a message for the client.
pub fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("ids are 1-128 characters of A-Z a-z 0-9 . _ ~ -, not empty".into());
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-')))
    {
        return Err(format!(
            "ids are 1-128 characters of A-Z a-z 0-9 . _ ~ -, not {}",
            QuotedChar(bad)
        ));
    }
    // Only ASCII is left, so bytes are characters.
    if id.len() > MAX_ID_LEN {
        return Err(format!(
            "ids are 1-128 characters of A-Z a-z 0-9 . _ ~ -, not {}",
            id.len()
        ));
    }
    if id == "." || id == ".." {
        return Err(format!("{} is not a valid id", Quoted(id)));
    }
    Ok(())
}

/// Checks a `documentId` (section 1); a refusal is `unknown_document` (5.2, 12).
pub fn validate_document_id(id: &str) -> Result<(), String> {
    validate_id(id).map_err(|reason| format!("invalid documentId: {reason}"))
}

/// Checks a `clientId` a client gives as its own: the rules of section 1, and not `server`.
///
/// The protocol gives the two refusals different codes: a `hello` whose `clientId` breaks section 1
/// is `malformed_frame`, while `server` is `forbidden` and is checked after the token (5.2,
/// Appendix B). The handshake ([`super::ServerConnection`]) checks the two apart, in that order.
pub fn validate_client_id(id: &str) -> Result<(), String> {
    validate_id(id).map_err(|reason| format!("invalid clientId: {reason}"))?;
    if id == SERVER_CLIENT_ID {
        return Err(
            "clientId server is reserved for changes that do not come from a client".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_protocol() {
        let limits = Limits::default();
        assert_eq!(limits.max_frame_bytes, 1_048_576);
        assert_eq!(limits.max_depth, 128);
        assert_eq!(limits.messages_per_second, 100);
        assert_eq!(limits.burst, 200);
        assert_eq!(limits.max_page, 10_000);
        assert_eq!(limits.default_page, 1000);
    }

    #[test]
    fn page_size_follows_12_2() {
        let limits = Limits::default();
        assert_eq!(limits.page_size(None), 1000);
        assert_eq!(limits.page_size(Some(0)), 0);
        assert_eq!(limits.page_size(Some(1)), 1);
        assert_eq!(limits.page_size(Some(10_000)), 10_000);
        assert_eq!(limits.page_size(Some(10_001)), 10_000);
        assert_eq!(limits.page_size(Some(usize::MAX)), 10_000);
    }

    #[test]
    fn burst_then_refusal() {
        let mut limiter = RateLimiter::new(100, 200);
        for i in 0..200 {
            assert!(limiter.allow(5_000), "message {i} of the burst");
        }
        assert!(!limiter.allow(5_000));
        assert!(!limiter.allow(5_000));
        assert_eq!(limiter.retry_after_ms(), Some(10));
        // Limits::rate_limiter uses the same numbers.
        let mut from_limits = Limits::default().rate_limiter();
        assert_eq!((0..1000).filter(|_| from_limits.allow(0)).count(), 200);
    }

    #[test]
    fn refill_over_time() {
        let mut limiter = RateLimiter::new(100, 200);
        let t0 = 1_767_225_600_000;
        assert_eq!((0..300).filter(|_| limiter.allow(t0)).count(), 200);
        // 100 per second is one per 10 ms.
        assert!(!limiter.allow(t0 + 9));
        assert!(limiter.allow(t0 + 10));
        assert!(!limiter.allow(t0 + 10));
        // Partial progress is kept: 5 ms + 5 ms make one token.
        assert!(!limiter.allow(t0 + 15));
        assert!(limiter.allow(t0 + 20));
        // One second later: exactly 100 more.
        assert_eq!((0..300).filter(|_| limiter.allow(t0 + 1_020)).count(), 100);
        // A long pause refills to the burst, not beyond.
        assert_eq!((0..300).filter(|_| limiter.allow(t0 + 60_000)).count(), 200);
        // Sustained: at 100/s for 10 s, one message every 10 ms passes, none more.
        let start = t0 + 60_000;
        let passed = (1..=10_000u64)
            .filter(|ms| limiter.allow(start + ms) | limiter.allow(start + ms))
            .count();
        assert_eq!(passed, 1000);
    }

    #[test]
    fn fractional_rates_and_zero() {
        // 3 per second: 1000/3 ms per token; after 334 ms one token.
        let mut limiter = RateLimiter::new(3, 1);
        assert!(limiter.allow(0));
        assert!(!limiter.allow(333));
        assert_eq!(limiter.retry_after_ms(), Some(1));
        assert!(limiter.allow(334));
        // A rate of 0 never refills.
        let mut never = RateLimiter::new(0, 2);
        assert!(never.allow(0));
        assert!(never.allow(0));
        assert!(!never.allow(u64::MAX));
        assert_eq!(never.retry_after_ms(), None);
        // A burst of 0 still lets single messages through at the rate.
        let mut tiny = RateLimiter::new(10, 0);
        assert!(tiny.allow(0));
        assert!(!tiny.allow(0));
        assert!(tiny.allow(100));
    }

    #[test]
    fn huge_time_jumps_do_not_overflow() {
        let mut limiter = RateLimiter::new(u32::MAX, u32::MAX);
        assert!(limiter.allow(0));
        assert!(limiter.allow(u64::MAX));
        assert!(limiter.allow(u64::MAX));
        let mut limiter = RateLimiter::new(100, 5);
        assert_eq!((0..10).filter(|_| limiter.allow(0)).count(), 5);
        assert_eq!((0..10).filter(|_| limiter.allow(u64::MAX)).count(), 5);
        // Time going backwards adds nothing and does not reset the clock.
        assert!(!limiter.allow(0));
        assert!(!limiter.allow(u64::MAX));
        assert_eq!(limiter.retry_after_ms(), Some(10));
    }

    #[test]
    fn first_call_starts_the_clock() {
        // A limiter created at an arbitrary epoch does not gain tokens for the time before it.
        let mut limiter = RateLimiter::new(1, 1);
        assert!(limiter.allow(1_000_000));
        assert!(!limiter.allow(1_000_500));
        assert!(limiter.allow(1_001_000));
    }

    #[test]
    fn ids_follow_section_1() {
        for good in [
            "a",
            "doc-1",
            "board-42",
            "A.b_c~d-e",
            "...",
            ".a",
            "a..",
            "~",
            "0",
            &"x".repeat(128),
        ] {
            assert_eq!(validate_id(good), Ok(()), "{good:?}");
            assert_eq!(validate_document_id(good), Ok(()), "{good:?}");
            assert_eq!(validate_client_id(good), Ok(()), "{good:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            &"x".repeat(129),
            "a/b",
            "/",
            "a b",
            "a%2Fb",
            "a?b",
            "a#b",
            "a+b",
            "*",
            "caf\u{e9}",
            "\u{1f600}",
            "a\0",
            "a\n",
            "ｄｏｃ",
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
            assert!(validate_document_id(bad).is_err(), "{bad:?}");
            assert!(validate_client_id(bad).is_err(), "{bad:?}");
        }
        // 128 multi-byte characters are refused for their characters, not their length.
        let unicode = "\u{e9}".repeat(128);
        assert!(validate_id(&unicode).unwrap_err().contains('\u{e9}'));
        assert!(validate_id(&"x".repeat(129)).unwrap_err().contains("129"));
        assert!(validate_document_id("").unwrap_err().contains("documentId"));
        assert!(validate_client_id("").unwrap_err().contains("clientId"));
    }

    #[test]
    fn server_is_reserved_for_clients_only() {
        assert_eq!(validate_id("server"), Ok(()));
        assert_eq!(validate_document_id("server"), Ok(()));
        assert!(validate_client_id("server")
            .unwrap_err()
            .contains("reserved"));
        // Byte-for-byte comparison: other spellings are ordinary ids.
        assert_eq!(validate_client_id("Server"), Ok(()));
        assert_eq!(validate_client_id("server2"), Ok(()));
    }

    #[test]
    fn reading_many_documents_is_not_rate_limited_but_edits_and_churn_are() {
        use crate::vector_clock::VectorClock;
        let limits = Limits::default();
        let mut limiter = ConnectionLimiter::new(&limits);
        let sync = ClientMessage::Sync {
            vector_clock: VectorClock::new(),
            after: None,
        };
        let submit = ClientMessage::Submit { edits: Vec::new() };
        // Version 2: 1,000 documents opened and synced twice at once (3,000 frames).
        for n in 0..1000 {
            let id = format!("d{n}");
            assert!(limiter.allow(0, Some((Some(&id), &ClientMessage::Open)), true));
            assert!(
                limiter.allow(0, Some((Some(&id), &sync)), true),
                "sync of {id}"
            );
            assert!(
                limiter.allow(0, Some((Some(&id), &sync)), true),
                "sync again"
            );
        }
        // Edits keep the frame bucket: its burst of 200, then refused.
        let edits = (0..300)
            .filter(|_| limiter.allow(0, Some((Some("d0"), &submit)), true))
            .count();
        assert_eq!(edits, 200);
        // Opening and closing over and over runs the documents' bucket out too.
        let churn = (0..20_000)
            .filter(|_| limiter.allow(0, Some((Some("d1"), &ClientMessage::Close)), true))
            .count();
        assert_eq!(churn, limits.max_documents - 3000);
        assert!(!limiter.allow(0, Some((Some("d1"), &ClientMessage::Open)), true));
        assert!(limiter.allow(10, Some((Some("d1"), &ClientMessage::Open)), true));
        // Version 1 knows nothing of this: every frame counts.
        let mut v1 = ConnectionLimiter::new(&limits);
        let passed = (0..300)
            .filter(|_| v1.allow(0, Some((None, &sync)), false))
            .count();
        assert_eq!(passed, 200);
        // A frame that did not decode counts as a frame.
        assert!(!v1.allow(0, None, false));
    }
}
