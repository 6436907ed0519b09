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
mod tests;
