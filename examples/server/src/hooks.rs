//! Extension points: an application's own authentication, its rules on what may enter a
//! document, and what it does with each committed event. Implement [`Hooks`] (every method has
//! a default) and give it to [`crate::ServerBuilder::hooks`].
//!
//! Edits are checked where the log is ordered: after an edit applied to the document and before
//! it is appended. A refusal reaches the client as a `reject` with the refusal's code (HTTP
//! writes: the matching status) and nothing of the edit is stored; the client drops the edit and
//! reports it, as for every refused edit (PROTOCOL.md 10.1).

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use axum::http::HeaderMap;
use eventsync::protocol::{ErrorCode, Event, Operation};
use eventsync::sequencer::Proposed;
use json_patch::PatchOperation;
use serde_json::Value;

use crate::auth::Claims;
use crate::schema::SchemaRule;

/// Why a hook refused: a code of the protocol and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The code the client sees.
    pub code: ErrorCode,
    /// Why, for humans.
    pub message: String,
}

impl Refusal {
    /// The edit would leave the document breaking the application's rules (`invalid_document`,
    /// HTTP 422).
    pub fn invalid(message: impl Into<String>) -> Self {
        Refusal {
            code: ErrorCode::InvalidDocument,
            message: message.into(),
        }
    }

    /// The client may not do this (`forbidden`, HTTP 403).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Refusal {
            code: ErrorCode::Forbidden,
            message: message.into(),
        }
    }

    /// No or bad credentials (`unauthorized`, HTTP 401).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Refusal {
            code: ErrorCode::Unauthorized,
            message: message.into(),
        }
    }
}

/// A connection or request to authenticate: a WebSocket's (once its `hello` arrived), an SSE
/// stream's, or an HTTP request's.
#[derive(Debug, Clone, Copy)]
pub struct Authentication<'a> {
    /// The token it carries (`hello.token`, `Authorization: Bearer`, or `?token=`), if any.
    pub token: Option<&'a str>,
    /// The HTTP request's headers (a WebSocket's upgrade request's).
    pub headers: &'a HeaderMap,
    /// The client's address.
    pub address: Option<IpAddr>,
}

/// An edit about to be appended: who makes it, what it does, and the document before and after.
#[derive(Debug, Clone, Copy)]
pub struct EditContext<'a> {
    /// The document.
    pub document_id: &'a str,
    /// The client id of a WebSocket edit, or an HTTP write's origin (its token's client id, or
    /// `server`); `server` for changes made in the database by other programs.
    pub client_id: &'a str,
    /// The edit's `clientSeq`; `None` for HTTP writes and database changes.
    pub client_seq: Option<u64>,
    /// Create, update or delete.
    pub operation: Operation,
    /// Its RFC 6902 operations.
    pub patch: &'a [PatchOperation],
    /// The document before the edit (`None`: it did not exist).
    pub before: Option<&'a Value>,
    /// The document after it (`None`: deleted).
    pub after: Option<&'a Value>,
}

/// What an application plugs into the server. Every method has a default that changes nothing.
#[async_trait]
pub trait Hooks: Send + Sync + 'static {
    /// Authenticates a connection or request. `Ok(Some(claims))`: it acts as the claims say
    /// (their client id, documents and rights, until `exp`), as if it carried a token with
    /// them; `Ok(None)`: the built-in way decides (tokens when `--auth-secret` is set, else
    /// anyone); `Err`: refused with the refusal's code (`unauthorized` or `forbidden`).
    async fn authenticate(&self, request: &Authentication<'_>) -> Result<Option<Claims>, Refusal> {
        let _ = request;
        Ok(None)
    }

    /// Checks an edit before it is appended; `Err` refuses it (and the later edits of its
    /// submit). Called under the document's lock, in the order edits are appended: keep it fast
    /// and do not block (no I/O).
    fn check_edit(&self, edit: &EditContext<'_>) -> Result<(), Refusal> {
        let _ = edit;
        Ok(())
    }

    /// Sees every event this server process committed, right after it is durable, in order per
    /// document (events other processes on the same PostgreSQL database append are theirs to
    /// observe). Called under the document's lock: hand slow work to a task or a channel.
    fn committed(&self, event: &Event) {
        let _ = event;
    }
}

/// The rules every edit meets before it is appended: the size limit, the JSON Schemas and the
/// application's hooks, in that order.
#[derive(Default, Clone)]
pub struct Rules {
    /// The heaviest a document may become (`too_large` above it), in the units of
    /// [`eventsync::diff::weight`]: one per value plus the bytes of every string and key.
    pub max_document_bytes: Option<usize>,
    /// Schemas, each for the documents whose id matches its pattern.
    pub schemas: Vec<SchemaRule>,
    /// The application's hooks, asked in order.
    pub hooks: Vec<Arc<dyn Hooks>>,
}

impl Rules {
    /// Whether anything beyond the size limit checks edits.
    pub fn checks_edits(&self) -> bool {
        !self.schemas.is_empty() || !self.hooks.is_empty()
    }

    /// Whether a check needs the document before each edit (hooks do).
    pub fn wants_before(&self) -> bool {
        !self.hooks.is_empty()
    }

    /// Checks an edit that applied: the schemas of its document, then every hook.
    pub fn check(&self, edit: &Proposed<'_>) -> Result<(), (ErrorCode, String)> {
        if let Some(after) = edit.after {
            for rule in self.schemas.iter().filter(|r| r.covers(edit.document_id)) {
                rule.validate(after)
                    .map_err(|message| (ErrorCode::InvalidDocument, message))?;
            }
        }
        if self.hooks.is_empty() {
            return Ok(());
        }
        let context = EditContext {
            document_id: edit.document_id,
            client_id: edit.client_id,
            client_seq: edit.client_seq,
            operation: edit.operation,
            patch: edit.patch,
            before: edit.before.and_then(Option::as_ref),
            after: edit.after,
        };
        for hook in &self.hooks {
            hook.check_edit(&context)
                .map_err(|refusal| (refusal.code, refusal.message))?;
        }
        Ok(())
    }

    /// Tells every hook about events this process committed.
    pub fn committed(&self, events: &[Event]) {
        for hook in &self.hooks {
            for event in events {
                hook.committed(event);
            }
        }
    }

    /// Asks the hooks, in order, until one decides (see [`Hooks::authenticate`]).
    pub async fn authenticate(
        &self,
        request: &Authentication<'_>,
    ) -> Result<Option<Claims>, Refusal> {
        for hook in &self.hooks {
            if let Some(claims) = hook.authenticate(request).await? {
                return Ok(Some(claims));
            }
        }
        Ok(None)
    }
}
