//! Document history on the JavaScript `SyncClient` (conversion only; see
//! `driver/history.rs`): `history`, `versionAt` and `restore`, each a promise that rejects with
//! a coded `EventsyncError`.

use crate::protocol::members::{FromJson, Members, Object};
use serde_json::Value;
use wasm_bindgen::prelude::*;

use super::bindings::{to_js, JsSyncClient};
use super::convert::fields_from_js;
use super::error::{client_error, invalid_argument, to_u64};

/// The options of `history()`.
#[derive(Default)]
struct HistoryOptions {
    after: Option<f64>,
    limit: Option<f64>,
}

impl FromJson for HistoryOptions {
    fn from_json(fields: Value) -> Result<Self, crate::protocol::JsonError> {
        let mut m = Members::of(fields, "history options")?;
        Ok(HistoryOptions {
            after: m.optional("after")?,
            limit: m.optional("limit")?,
        })
    }
}

#[wasm_bindgen(js_class = SyncClient)]
impl JsSyncClient {
    /// A page of the document's history, `{ entries, headSeq, hasMore, oldestSeq? }`: the
    /// events after `after` (default 0), at most `limit` (the server's default when absent),
    /// each a `LogEvent` (who: `clientId`, when: `timestamp`, what: `operation` and `diff`).
    /// Page on with `after` = the last entry's `sequenceNum` while `hasMore`. A document of a
    /// `SyncConnection` only: a client of its own rejects with `unexpected_message`.
    pub fn history(&self, options: JsValue) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let options: HistoryOptions = if options.is_undefined() || options.is_null() {
                HistoryOptions::default()
            } else {
                let fields = fields_from_js(&options, &["after", "limit"])
                    .map_err(|e| invalid_argument("history options", e))?;
                HistoryOptions::from_json(fields)
                    .map_err(|e| invalid_argument("history options", e))?
            };
            let after = options.after.map_or(Ok(0), |n| to_u64(n, "after"))?;
            let limit = options.limit.map(|n| to_u64(n, "limit")).transpose()?;
            let page = inner.history(after, limit).await.map_err(client_error)?;
            let value = Object::new()
                .with("entries", &page.entries)
                .with("headSeq", &page.head_seq)
                .with("hasMore", &page.has_more)
                .with_some("oldestSeq", &page.oldest_seq)
                .done();
            to_js(&value)
        })
    }

    /// The document as of `seq`, `{ sequenceNum, document, clientId?, timestamp?, operation? }`
    /// (`document`: `null` when it did not exist then). Rejects with `history_compacted` for a
    /// position compaction removed, `invalid_sequence` for one ahead of the log.
    #[wasm_bindgen(js_name = versionAt)]
    pub fn version_at(&self, seq: f64) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let seq = to_u64(seq, "seq")?;
            let version = inner.version_at(seq).await.map_err(client_error)?;
            let value = Object::new()
                .with("sequenceNum", &version.sequence_num)
                .with("document", &version.document)
                .with_some("clientId", &version.client_id)
                .with_some("timestamp", &version.timestamp)
                .with_some("operation", &version.operation)
                .done();
            to_js(&value)
        })
    }

    /// Writes the document as of `seq` back as one new edit (undoable like any edit); resolves
    /// with its `clientSeq`. Nothing to change rejects with `invalid_argument`.
    pub fn restore(&self, seq: f64) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let seq = to_u64(seq, "seq")?;
            let client_seq = inner.restore(seq).await.map_err(client_error)?;
            Ok(JsValue::from_f64(client_seq as f64))
        })
    }
}
