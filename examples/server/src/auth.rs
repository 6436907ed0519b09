//! Access tokens (docs/PROTOCOL.md 5.3 and 12).
//!
//! The protocol leaves tokens opaque; the reference server uses signed claims:
//! `base64url(claims JSON) "." base64url(HMAC-SHA256(secret, first part))`, both parts without
//! padding. The claims name one document (or `*` for every document), one `clientId`, the rights
//! (`read` or `write`) and an expiry in Unix seconds:
//!
//! ```json
//! { "documentId": "board-42", "clientId": "alice", "rights": "write", "exp": 1767225600 }
//! ```
//!
//! Nothing here reads the clock: callers pass the time in.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use eventsync::protocol::{ErrorCode, SERVER_CLIENT_ID};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::limits::{validate_client_id, validate_document_id};
use eventsync::server::{Credentials, Rights as DocumentRights};

type HmacSha256 = Hmac<Sha256>;

/// The `documentId` claim that covers every document.
pub const ANY_DOCUMENT: &str = "*";

/// What a token allows on its document. `Write` implies `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rights {
    /// Handshake, catch-up, live events, snapshots and SSE.
    Read,
    /// Everything `Read` allows, plus edits and HTTP writes.
    Write,
}

impl Rights {
    /// True when these rights include `needed` (`Write` includes `Read`).
    pub fn allows(self, needed: Rights) -> bool {
        match needed {
            Rights::Read => true,
            Rights::Write => self == Rights::Write,
        }
    }

    /// True for `Write`.
    pub fn can_write(self) -> bool {
        self.allows(Rights::Write)
    }
}

/// The signed content of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    /// The document the token is for, or [`ANY_DOCUMENT`] (`*`).
    pub document_id: String,
    /// The client the token names; a connection using it is bound to this id.
    pub client_id: String,
    /// What the token allows.
    pub rights: Rights,
    /// Expiry, Unix seconds: the token is refused at and after this second.
    pub exp: u64,
}

impl Claims {
    /// True when the token is for `document_id`: the token names it, or a prefix of it ending
    /// in `*` (`board-42.*` covers `board-42.cards`), or every document (`*`).
    pub fn covers(&self, document_id: &str) -> bool {
        match self.document_id.strip_suffix('*') {
            Some(prefix) => document_id.starts_with(prefix),
            None => self.document_id == document_id,
        }
    }
}

/// Checks the document a token names: an id (section 1), `*`, or the start of ids followed by
/// `*` (one or more characters of the id set, then `*`).
pub fn validate_document_pattern(pattern: &str) -> Result<(), String> {
    match pattern.strip_suffix('*') {
        None => validate_document_id(pattern),
        Some("") => Ok(()),
        Some(prefix) if prefix.len() < crate::limits::MAX_ID_LEN => {
            // A prefix is a valid id itself, unless it ends in '.' ("board-42." is fine).
            let probe = format!("{prefix}x");
            validate_document_id(&probe).map_err(|_| {
                format!("{pattern:?} is not a document, `*`, or the start of document ids and `*`")
            })
        }
        Some(_) => Err(format!("{pattern:?} is longer than any document id")),
    }
}

/// Why a token was refused.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Authentication is on and the request carries no token.
    #[error("missing access token")]
    Missing,
    /// The token is not `claims.signature` of base64url, or its claims are not valid.
    #[error("malformed access token")]
    Malformed,
    /// The signature does not match (another secret, or altered claims).
    #[error("access token signature does not match")]
    BadSignature,
    /// The token expired (its `exp` is at or before now).
    #[error("access token expired at {exp}")]
    Expired {
        /// The token's expiry, Unix seconds.
        exp: u64,
    },
    /// The token is valid but for another document.
    #[error("access token is for document {token_document}")]
    WrongDocument {
        /// The document the token names.
        token_document: String,
    },
    /// The token names another client than the one the request gives (5.2, 12.1).
    #[error("token is for client {token_client}, request says {given}")]
    ClientMismatch {
        /// The client the token names.
        token_client: String,
        /// The client the request names.
        given: String,
    },
    /// A client gave the reserved id `server` as its own (section 1).
    #[error("clientId server is reserved for changes that do not come from a client")]
    ReservedClient,
    /// The token only allows reading (8.3 step 4).
    #[error("token grants read-only access to {document_id}")]
    ReadOnly {
        /// The document that was to be written.
        document_id: String,
    },
}

impl AuthError {
    /// The protocol error code for this refusal (10.2).
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::Missing
            | AuthError::Malformed
            | AuthError::BadSignature
            | AuthError::Expired { .. } => ErrorCode::Unauthorized,
            AuthError::WrongDocument { .. }
            | AuthError::ReservedClient
            | AuthError::ReadOnly { .. } => ErrorCode::Forbidden,
            AuthError::ClientMismatch { .. } => ErrorCode::ClientMismatch,
        }
    }
}

/// Issues and verifies tokens with one HMAC secret.
#[derive(Clone)]
pub struct Authority {
    secret: Vec<u8>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Authority {
    /// An authority signing with `secret` (any length; HMAC accepts every key size).
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Authority {
            secret: secret.as_ref().to_vec(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts keys of any length")
    }

    /// A token carrying `claims`, signed with this authority's secret.
    pub fn issue(&self, claims: &Claims) -> String {
        let json = serde_json::to_vec(claims).expect("claims serialize");
        let payload = URL_SAFE_NO_PAD.encode(json);
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// Checks the token's shape, its signature (in constant time), its expiry against `now_unix`
    /// (seconds; a token is refused from its `exp` second on) and that it covers `document_id`.
    /// Claims are parsed only after the signature matched. Signed claims whose `clientId` or
    /// `documentId` break section 1 (or name the client `server`) are `Malformed`.
    pub fn verify(
        &self,
        token: &str,
        document_id: &str,
        now_unix: u64,
    ) -> Result<Claims, AuthError> {
        let claims = self.verify_token(token, now_unix)?;
        if !claims.covers(document_id) {
            return Err(AuthError::WrongDocument {
                token_document: claims.document_id,
            });
        }
        Ok(claims)
    }

    /// As [`Authority::verify`], without checking which document the token is for.
    pub fn verify_token(&self, token: &str, now_unix: u64) -> Result<Claims, AuthError> {
        let (payload, signature) = token.split_once('.').ok_or(AuthError::Malformed)?;
        if payload.is_empty() || signature.is_empty() || signature.contains('.') {
            return Err(AuthError::Malformed);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AuthError::Malformed)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| AuthError::Malformed)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| AuthError::BadSignature)?;

        let claims: Claims = serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)?;
        if validate_client_id(&claims.client_id).is_err()
            || validate_document_pattern(&claims.document_id).is_err()
        {
            return Err(AuthError::Malformed);
        }
        if now_unix >= claims.exp {
            return Err(AuthError::Expired { exp: claims.exp });
        }
        Ok(claims)
    }
}

/// What a request may do, after [`authorize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The client id the token names; the connection or request is bound to it. `None` when
    /// authentication is off (any client id may be used).
    pub client_id: Option<String>,
    /// What the request may do on the document.
    pub rights: Rights,
    /// When the token expires (Unix seconds); `None` when authentication is off. A connection
    /// ends then (5.3).
    pub expires_at: Option<u64>,
}

impl Access {
    /// True when the request may write the document.
    pub fn can_write(&self) -> bool {
        self.rights.can_write()
    }

    /// Refuses a write without write rights (`forbidden`, 8.3 step 4).
    pub fn require_write(&self, document_id: &str) -> Result<(), AuthError> {
        if self.can_write() {
            Ok(())
        } else {
            Err(AuthError::ReadOnly {
                document_id: document_id.to_owned(),
            })
        }
    }

    /// Checks the `clientId` a request gives (the `hello`'s, or a non-empty body `clientId` of
    /// HTTP sync) in the order of 5.2: it must be the token's (`client_mismatch`), and it must not
    /// be `server` (`forbidden`). Its syntax is checked before, with
    /// [`crate::limits::validate_id`] (`malformed_frame`).
    pub fn check_client(&self, client_id: &str) -> Result<(), AuthError> {
        if let Some(bound) = &self.client_id {
            if bound != client_id {
                return Err(AuthError::ClientMismatch {
                    token_client: bound.clone(),
                    given: client_id.to_owned(),
                });
            }
        }
        if client_id == SERVER_CLIENT_ID {
            return Err(AuthError::ReservedClient);
        }
        Ok(())
    }

    /// The origin of an HTTP write (12.5): the token's `clientId`, or `server` without one.
    pub fn origin(&self) -> &str {
        self.client_id.as_deref().unwrap_or(SERVER_CLIENT_ID)
    }
}

/// The server's policy. With no authority (authentication off) every request may read and write
/// as any client id and tokens are ignored (5.3). With one, a valid token for `document_id` is
/// required and the request is bound to the token's client id and rights.
pub fn authorize(
    authority: Option<&Authority>,
    token: Option<&str>,
    document_id: &str,
    now_unix: u64,
) -> Result<Access, AuthError> {
    let Some(authority) = authority else {
        return Ok(Access {
            client_id: None,
            rights: Rights::Write,
            expires_at: None,
        });
    };
    let token = token.ok_or(AuthError::Missing)?;
    let claims = authority.verify(token, document_id, now_unix)?;
    Ok(Access {
        client_id: Some(claims.client_id),
        rights: claims.rights,
        expires_at: Some(claims.exp),
    })
}

/// What claims an application's [`crate::Hooks::authenticate`] gave allow on `document_id`: the
/// same rules as a token's (expiry, the documents it covers).
pub fn access_for(claims: &Claims, document_id: &str, now_unix: u64) -> Result<Access, AuthError> {
    credentials_for(claims, now_unix)?;
    if !claims.covers(document_id) {
        return Err(AuthError::WrongDocument {
            token_document: claims.document_id.clone(),
        });
    }
    Ok(Access {
        client_id: Some(claims.client_id.clone()),
        rights: claims.rights,
        expires_at: Some(claims.exp),
    })
}

/// A connection's credentials from claims an application's hook gave (as [`credentials`] makes
/// them from a token): refused when they are expired or name an id section 1 does not allow.
pub fn credentials_for(claims: &Claims, now_unix: u64) -> Result<Credentials, AuthError> {
    if validate_client_id(&claims.client_id).is_err()
        || validate_document_pattern(&claims.document_id).is_err()
    {
        return Err(AuthError::Malformed);
    }
    if now_unix >= claims.exp {
        return Err(AuthError::Expired { exp: claims.exp });
    }
    Ok(Credentials {
        client_id: Some(claims.client_id.clone()),
        expires_at: Some(claims.exp.saturating_mul(1000)),
    })
}

/// Who a `hello`'s token names (5.3), for the core's connection engine, which checks it against
/// the `hello` in the order of 5.2 (`client_mismatch`, then `forbidden`). Without
/// authentication: anyone, tokens ignored (`None` claims). With it: a missing or bad token is
/// `unauthorized`; a good one names its client and its expiry (Unix milliseconds, the
/// connection's clock), and its claims answer [`rights`] for each document the connection opens.
pub fn credentials(
    authority: Option<&Authority>,
    token: Option<&str>,
    now_unix: u64,
) -> Result<(Credentials, Option<Claims>), AuthError> {
    let Some(authority) = authority else {
        return Ok((Credentials::anyone(), None));
    };
    let claims = authority.verify_token(token.ok_or(AuthError::Missing)?, now_unix)?;
    let credentials = Credentials {
        client_id: Some(claims.client_id.clone()),
        expires_at: Some(claims.exp.saturating_mul(1000)),
    };
    Ok((credentials, Some(claims)))
}

/// What verified claims (`None`: authentication off) allow on a document.
pub fn rights(claims: Option<&Claims>, document_id: &str) -> DocumentRights {
    match claims {
        None => DocumentRights::all(),
        Some(claims) if claims.covers(document_id) => DocumentRights {
            read: true,
            write: claims.rights.can_write(),
        },
        Some(_) => DocumentRights {
            read: false,
            write: false,
        },
    }
}

/// The token of an HTTP request or WebSocket upgrade: from `Authorization: Bearer X` (scheme
/// case-insensitive, surrounding spaces ignored), else from the query's `token=X` (the query may
/// start with `?`; the value is percent-decoded, `+` is kept as is). The header wins when both
/// are present (12); an `Authorization` header with another scheme is ignored. Empty tokens are
/// `None`. For WebSocket, `hello.token` wins over this (5.3).
pub fn token_from(authorization_header: Option<&str>, query: Option<&str>) -> Option<String> {
    authorization_header
        .and_then(bearer_token)
        .or_else(|| query.and_then(query_token))
}

fn bearer_token(header: &str) -> Option<String> {
    let header = header.trim();
    let (scheme, rest) = header.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

fn query_token(query: &str) -> Option<String> {
    let query = query.strip_prefix('?').unwrap_or(query);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == "token")
        .find_map(|(_, value)| {
            let value = percent_decode(value)?;
            (!value.is_empty()).then_some(value)
        })
}

/// RFC 3986 percent-decoding; a `%` not followed by two hex digits is kept literally. `None` when
/// the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    fn hex(byte: u8) -> Option<u8> {
        (byte as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_225_600;

    fn claims(document: &str, client: &str, rights: Rights, exp: u64) -> Claims {
        Claims {
            document_id: document.into(),
            client_id: client.into(),
            rights,
            exp,
        }
    }

    fn authority() -> Authority {
        Authority::new("test-secret")
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A token whose payload is `payload` (any bytes), correctly signed.
    fn signed(authority: &Authority, payload: &[u8]) -> String {
        let payload = b64(payload);
        let mut mac = authority.mac();
        mac.update(payload.as_bytes());
        format!("{payload}.{}", b64(mac.finalize().into_bytes()))
    }

    #[test]
    fn issue_verify_round_trip() {
        let a = authority();
        let c = claims("doc-1", "alice", Rights::Write, NOW + 60);
        let token = a.issue(&c);
        assert_eq!(token.matches('.').count(), 1);
        assert!(!token.contains('='), "no padding: {token}");
        assert!(
            !token.contains('+') && !token.contains('/'),
            "url-safe: {token}"
        );
        assert_eq!(a.verify(&token, "doc-1", NOW).unwrap(), c);
        // A clone verifies too, and the claims part is the documented JSON.
        assert_eq!(a.clone().verify(&token, "doc-1", NOW).unwrap(), c);
        let json = URL_SAFE_NO_PAD
            .decode(token.split_once('.').unwrap().0)
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"documentId": "doc-1", "clientId": "alice", "rights": "write", "exp": NOW + 60})
        );
    }

    #[test]
    fn tampered_claims_are_refused() {
        let a = authority();
        let token = a.issue(&claims("doc-1", "alice", Rights::Read, NOW + 60));
        let (_, signature) = token.split_once('.').unwrap();
        let forged =
            b64(serde_json::to_vec(&claims("doc-1", "alice", Rights::Write, NOW + 60)).unwrap());
        let err = a
            .verify(&format!("{forged}.{signature}"), "doc-1", NOW)
            .unwrap_err();
        assert!(matches!(err, AuthError::BadSignature), "{err:?}");
        assert_eq!(err.code(), ErrorCode::Unauthorized);

        // Swapping the claims of two genuine tokens does not work either.
        let other = a.issue(&claims("doc-2", "bob", Rights::Write, NOW + 60));
        let mixed = format!(
            "{}.{}",
            other.split_once('.').unwrap().0,
            token.split_once('.').unwrap().1
        );
        assert!(matches!(
            a.verify(&mixed, "doc-2", NOW),
            Err(AuthError::BadSignature)
        ));
    }

    #[test]
    fn tampered_signature_is_refused() {
        let a = authority();
        let token = a.issue(&claims("doc-1", "alice", Rights::Write, NOW + 60));
        let (payload, signature) = token.split_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(signature).unwrap();
        raw[0] ^= 1;
        let flipped = format!("{payload}.{}", b64(&raw));
        assert!(matches!(
            a.verify(&flipped, "doc-1", NOW),
            Err(AuthError::BadSignature)
        ));
        // A truncated signature (valid base64, too short) is a bad signature too.
        let short = format!("{payload}.{}", b64(&raw[..16]));
        assert!(matches!(
            a.verify(&short, "doc-1", NOW),
            Err(AuthError::BadSignature)
        ));
    }

    #[test]
    fn wrong_secret_is_refused() {
        let token = Authority::new("other-secret").issue(&claims(
            "doc-1",
            "alice",
            Rights::Write,
            NOW + 60,
        ));
        assert!(matches!(
            authority().verify(&token, "doc-1", NOW),
            Err(AuthError::BadSignature)
        ));
    }

    #[test]
    fn expiry_is_refused_from_the_exp_second_on() {
        let a = authority();
        let token = a.issue(&claims("doc-1", "alice", Rights::Write, NOW));
        assert!(a.verify(&token, "doc-1", NOW - 1).is_ok());
        let at = a.verify(&token, "doc-1", NOW).unwrap_err();
        assert!(
            matches!(at, AuthError::Expired { exp } if exp == NOW),
            "{at:?}"
        );
        assert_eq!(at.code(), ErrorCode::Unauthorized);
        assert!(matches!(
            a.verify(&token, "doc-1", NOW + 1),
            Err(AuthError::Expired { exp }) if exp == NOW
        ));
        // exp 0 is always expired; u64::MAX never is.
        let zero = a.issue(&claims("doc-1", "alice", Rights::Read, 0));
        assert!(matches!(
            a.verify(&zero, "doc-1", 0),
            Err(AuthError::Expired { exp: 0 })
        ));
        let forever = a.issue(&claims("doc-1", "alice", Rights::Read, u64::MAX));
        assert!(a.verify(&forever, "doc-1", u64::MAX - 1).is_ok());
    }

    #[test]
    fn wrong_document_is_forbidden() {
        let a = authority();
        let token = a.issue(&claims("doc-1", "alice", Rights::Write, NOW + 60));
        let err = a.verify(&token, "doc-2", NOW).unwrap_err();
        assert!(
            matches!(&err, AuthError::WrongDocument { token_document } if token_document == "doc-1"),
            "{err:?}"
        );
        assert_eq!(err.code(), ErrorCode::Forbidden);
        // Ids compare byte for byte: case matters and there is no prefix matching.
        assert!(a.verify(&token, "DOC-1", NOW).is_err());
        assert!(a.verify(&token, "doc-10", NOW).is_err());
        assert!(a.verify(&token, "*", NOW).is_err());
    }

    #[test]
    fn star_covers_every_document() {
        let a = authority();
        let token = a.issue(&claims("*", "alice", Rights::Read, NOW + 60));
        for doc in ["doc-1", "board-42", "x", "*"] {
            let got = a.verify(&token, doc, NOW).unwrap();
            assert_eq!(got.document_id, "*");
            assert_eq!(got.client_id, "alice");
        }
        // But not past its expiry.
        assert!(matches!(
            a.verify(&token, "doc-1", NOW + 60),
            Err(AuthError::Expired { .. })
        ));
    }

    #[test]
    fn rights_read_and_write() {
        assert!(Rights::Read.allows(Rights::Read));
        assert!(!Rights::Read.allows(Rights::Write));
        assert!(Rights::Write.allows(Rights::Read));
        assert!(Rights::Write.allows(Rights::Write));
        assert!(!Rights::Read.can_write());
        assert_eq!(serde_json::to_string(&Rights::Read).unwrap(), "\"read\"");
        assert_eq!(serde_json::to_string(&Rights::Write).unwrap(), "\"write\"");
        assert!(serde_json::from_str::<Rights>("\"Write\"").is_err());
        assert!(serde_json::from_str::<Rights>("\"admin\"").is_err());

        let a = authority();
        let read = a.issue(&claims("doc-1", "alice", Rights::Read, NOW + 60));
        let write = a.issue(&claims("doc-1", "alice", Rights::Write, NOW + 60));
        let read_access = authorize(Some(&a), Some(&read), "doc-1", NOW).unwrap();
        assert_eq!(read_access.rights, Rights::Read);
        assert!(!read_access.can_write());
        let err = read_access.require_write("doc-1").unwrap_err();
        assert!(matches!(err, AuthError::ReadOnly { ref document_id } if document_id == "doc-1"));
        assert_eq!(err.code(), ErrorCode::Forbidden);
        assert_eq!(
            err.to_string(),
            "token grants read-only access to doc-1",
            "the message of PROTOCOL.md 10.3"
        );
        let write_access = authorize(Some(&a), Some(&write), "doc-1", NOW).unwrap();
        assert!(write_access.can_write());
        assert!(write_access.require_write("doc-1").is_ok());
    }

    #[test]
    fn malformed_tokens() {
        let a = authority();
        let good = a.issue(&claims("doc-1", "alice", Rights::Write, NOW + 60));
        let (payload, signature) = good.split_once('.').unwrap();
        let cases = [
            String::new(),
            ".".into(),
            "no-dot-at-all".into(),
            payload.to_owned(),
            format!("{payload}."),
            format!(".{signature}"),
            format!("{payload}.{signature}.extra"),
            format!("{payload}..{signature}"),
            format!("{payload}.{signature}="),         // padding
            format!("{payload}=.{signature}"),         // padding
            format!("{payload}.+{}", &signature[1..]), // not url-safe
            format!("{payload}.{}", &signature[..41]), // impossible base64 length
            format!("{payload}.!!!!"),
            format!("ey@@.{signature}"),
            format!(" {good}"),
        ];
        for token in &cases {
            let err = a.verify(token, "doc-1", NOW).unwrap_err();
            assert!(matches!(err, AuthError::Malformed), "{token:?}: {err:?}");
            assert_eq!(err.code(), ErrorCode::Unauthorized);
        }
        assert!(matches!(
            a.verify("", "doc-1", NOW),
            Err(AuthError::Malformed)
        ));
        assert!(matches!(
            a.verify("abc", "doc-1", NOW),
            Err(AuthError::Malformed)
        ));
        assert!(matches!(
            a.verify(&format!("{payload}.!!!!"), "doc-1", NOW),
            Err(AuthError::Malformed)
        ));

        // Correctly signed payloads that are not valid claims are malformed (not a panic).
        for payload in [
            &b"not json"[..],
            b"",
            b"[]",
            b"{}",
            br#"{"documentId":"doc-1","clientId":"alice","rights":"write"}"#,
            br#"{"documentId":"doc-1","clientId":"alice","rights":"admin","exp":1}"#,
            br#"{"documentId":"doc-1","clientId":"alice","rights":"write","exp":-1}"#,
            br#"{"documentId":"doc-1","clientId":"alice","rights":"write","exp":"9999999999"}"#,
            br#"{"documentId":"doc-1","clientId":"","rights":"write","exp":9999999999}"#,
            br#"{"documentId":"doc-1","clientId":"server","rights":"write","exp":9999999999}"#,
            br#"{"documentId":"a/b","clientId":"alice","rights":"write","exp":9999999999}"#,
            b"\xff\xfe",
        ] {
            let token = signed(&a, payload);
            let err = a.verify(&token, "doc-1", NOW).unwrap_err();
            assert!(matches!(err, AuthError::Malformed), "{payload:?}: {err:?}");
        }
        // Unknown claim members are ignored (section 1), so tokens can grow fields.
        let extra = signed(
            &a,
            br#"{"documentId":"doc-1","clientId":"alice","rights":"read","exp":9999999999,"iat":1}"#,
        );
        assert_eq!(a.verify(&extra, "doc-1", NOW).unwrap().rights, Rights::Read);
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let a = Authority::new("hunter2-very-secret");
        let text = format!("{a:?} {a:#?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("Authority"));
    }

    #[test]
    fn error_codes() {
        assert_eq!(AuthError::Missing.code(), ErrorCode::Unauthorized);
        assert_eq!(AuthError::Malformed.code(), ErrorCode::Unauthorized);
        assert_eq!(AuthError::BadSignature.code(), ErrorCode::Unauthorized);
        assert_eq!(
            AuthError::Expired { exp: 1 }.code(),
            ErrorCode::Unauthorized
        );
        let wrong = AuthError::WrongDocument {
            token_document: "d".into(),
        };
        assert_eq!(wrong.code(), ErrorCode::Forbidden);
        assert_eq!(AuthError::ReservedClient.code(), ErrorCode::Forbidden);
        let mismatch = AuthError::ClientMismatch {
            token_client: "bob".into(),
            given: "alice".into(),
        };
        assert_eq!(mismatch.code(), ErrorCode::ClientMismatch);
        assert_eq!(
            mismatch.to_string(),
            "token is for client bob, request says alice"
        );
    }

    #[test]
    fn token_from_header() {
        assert_eq!(
            token_from(Some("Bearer abc.def"), None).as_deref(),
            Some("abc.def")
        );
        assert_eq!(
            token_from(Some("bearer abc.def"), None).as_deref(),
            Some("abc.def")
        );
        assert_eq!(
            token_from(Some("BEARER abc.def"), None).as_deref(),
            Some("abc.def")
        );
        assert_eq!(
            token_from(Some("BeArEr abc.def"), None).as_deref(),
            Some("abc.def")
        );
        assert_eq!(
            token_from(Some("  Bearer    abc.def   "), None).as_deref(),
            Some("abc.def")
        );
        assert_eq!(
            token_from(Some("Bearer\tabc.def"), None).as_deref(),
            Some("abc.def")
        );
        for header in [
            "Bearer",
            "Bearer ",
            "Bearer    ",
            "",
            "   ",
            "Basic abc.def",
            "Bearerabc.def",
            "Token abc",
        ] {
            assert_eq!(token_from(Some(header), None), None, "{header:?}");
        }
        // The header wins over the query (12); another scheme falls back to the query.
        assert_eq!(
            token_from(Some("Bearer from-header"), Some("token=from-query")).as_deref(),
            Some("from-header")
        );
        assert_eq!(
            token_from(Some("Basic dXNlcjpwdw=="), Some("token=from-query")).as_deref(),
            Some("from-query")
        );
        assert_eq!(token_from(None, None), None);
    }

    #[test]
    fn token_from_query() {
        assert_eq!(token_from(None, Some("token=X")).as_deref(), Some("X"));
        assert_eq!(token_from(None, Some("?token=X")).as_deref(), Some("X"));
        assert_eq!(
            token_from(None, Some("a=1&token=X&b=2")).as_deref(),
            Some("X")
        );
        assert_eq!(
            token_from(None, Some("a=1&b=2&token=X")).as_deref(),
            Some("X")
        );
        // Percent-encoded (5.3): decoded; `+` is not a space here.
        assert_eq!(
            token_from(None, Some("token=abc%2Edef")).as_deref(),
            Some("abc.def")
        );
        assert_eq!(
            token_from(None, Some("token=abc%2edef")).as_deref(),
            Some("abc.def")
        );
        assert_eq!(token_from(None, Some("token=a+b")).as_deref(), Some("a+b"));
        assert_eq!(
            token_from(None, Some("token=a%zz%2")).as_deref(),
            Some("a%zz%2")
        );
        assert_eq!(token_from(None, Some("token=%ff")), None, "not UTF-8");
        // The value keeps everything after the first `=`.
        assert_eq!(token_from(None, Some("token=a=b")).as_deref(), Some("a=b"));
        // The first non-empty `token` wins; other keys do not match.
        assert_eq!(
            token_from(None, Some("token=&token=Y")).as_deref(),
            Some("Y")
        );
        assert_eq!(
            token_from(None, Some("token=X&token=Y")).as_deref(),
            Some("X")
        );
        for query in [
            "", "?", "token", "token=", "tokens=X", "xtoken=X", "Token=X", "a=1&b=2", "&&",
        ] {
            assert_eq!(token_from(None, Some(query)), None, "{query:?}");
        }
        // A real token goes through the query unchanged.
        let a = authority();
        let t = a.issue(&claims("doc-1", "alice", Rights::Write, NOW + 60));
        let got = token_from(None, Some(&format!("after=3&token={t}"))).unwrap();
        assert_eq!(got, t);
        assert!(a.verify(&got, "doc-1", NOW).is_ok());
    }

    #[test]
    fn authorize_without_authority_allows_everything() {
        for token in [None, Some(""), Some("garbage"), Some("a.b")] {
            let access = authorize(None, token, "doc-1", NOW).unwrap();
            assert_eq!(
                access,
                Access {
                    client_id: None,
                    rights: Rights::Write,
                    expires_at: None,
                }
            );
            assert!(access.check_client("alice").is_ok());
            assert!(access.check_client("bob").is_ok());
            assert!(matches!(
                access.check_client("server"),
                Err(AuthError::ReservedClient)
            ));
            assert_eq!(access.origin(), "server");
        }
    }

    #[test]
    fn authorize_with_authority_requires_a_token() {
        let a = authority();
        let err = authorize(Some(&a), None, "doc-1", NOW).unwrap_err();
        assert!(matches!(err, AuthError::Missing));
        assert_eq!(err.code(), ErrorCode::Unauthorized);
        assert!(matches!(
            authorize(Some(&a), Some("garbage"), "doc-1", NOW),
            Err(AuthError::Malformed)
        ));

        let token = a.issue(&claims("doc-1", "alice", Rights::Write, NOW + 60));
        let access = authorize(Some(&a), Some(&token), "doc-1", NOW).unwrap();
        assert_eq!(access.client_id.as_deref(), Some("alice"));
        assert_eq!(access.rights, Rights::Write);
        assert_eq!(access.origin(), "alice");
        assert!(access.check_client("alice").is_ok());
        let err = access.check_client("bob").unwrap_err();
        assert!(matches!(
            &err,
            AuthError::ClientMismatch { token_client, given } if token_client == "alice" && given == "bob"
        ));
        assert_eq!(err.code(), ErrorCode::ClientMismatch);
        // 5.2 order: a token for alice and a hello as server is a mismatch first.
        assert!(matches!(
            access.check_client("server"),
            Err(AuthError::ClientMismatch { .. })
        ));

        assert!(matches!(
            authorize(Some(&a), Some(&token), "doc-2", NOW),
            Err(AuthError::WrongDocument { .. })
        ));
        assert!(matches!(
            authorize(Some(&a), Some(&token), "doc-1", NOW + 60),
            Err(AuthError::Expired { .. })
        ));
        let foreign = Authority::new("x").issue(&claims("doc-1", "alice", Rights::Write, NOW + 60));
        assert!(matches!(
            authorize(Some(&a), Some(&foreign), "doc-1", NOW),
            Err(AuthError::BadSignature)
        ));
    }

    #[test]
    fn hello_credentials_name_the_client_and_rights_follow_the_documents_pattern() {
        let a = authority();
        let check = |token: Option<&str>| credentials(Some(&a), token, NOW).map_err(|e| e.code());
        assert_eq!(check(None), Err(ErrorCode::Unauthorized));
        assert_eq!(check(Some("garbage")), Err(ErrorCode::Unauthorized));
        let bob_doc2 = a.issue(&claims("doc-2", "bob", Rights::Read, NOW + 60));
        let (who, bob) = check(Some(&bob_doc2)).unwrap();
        assert_eq!(who.client_id.as_deref(), Some("bob"));
        assert_eq!(who.expires_at, Some((NOW + 60) * 1000));
        let none = rights(bob.as_ref(), "doc-1");
        assert!(!none.read && !none.write);
        let read = rights(bob.as_ref(), "doc-2");
        assert!(read.read && !read.write);
        let everything = a.issue(&claims("*", "bob", Rights::Write, NOW + 60));
        let (_, all) = check(Some(&everything)).unwrap();
        assert!(rights(all.as_ref(), "doc-9").write);
        // A prefix: board-42.* covers the board's documents and nothing else.
        let board = a.issue(&claims("board-42.*", "bob", Rights::Write, NOW + 60));
        let (_, board) = check(Some(&board)).unwrap();
        assert!(rights(board.as_ref(), "board-42.cards").write);
        assert!(rights(board.as_ref(), "board-42.").read);
        assert!(!rights(board.as_ref(), "board-43.cards").read);
        assert!(!rights(board.as_ref(), "board-42").read);
        // Without authentication: anyone may do anything, tokens ignored.
        let (who, none) = credentials(None, Some("x"), NOW).unwrap();
        assert_eq!(who, Credentials::anyone());
        assert!(rights(none.as_ref(), "doc-1").write);
    }

    #[test]
    fn document_patterns() {
        for good in ["doc", "*", "board-42.*", "a*", "x.y_z~-*"] {
            assert_eq!(validate_document_pattern(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "a/b*",
            "**",
            "a*b",
            "a b*",
            &format!("{}*", "x".repeat(128)),
        ] {
            assert!(validate_document_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn issued_token_for_server_is_refused() {
        let a = authority();
        let token = a.issue(&claims("doc-1", "server", Rights::Write, NOW + 60));
        assert!(matches!(
            authorize(Some(&a), Some(&token), "doc-1", NOW),
            Err(AuthError::Malformed)
        ));
    }
}
