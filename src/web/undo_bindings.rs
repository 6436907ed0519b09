//! Undo and redo on the JavaScript `SyncClient` (conversion only; see
//! [`crate::session::SyncSession::undo`]).

use wasm_bindgen::prelude::*;

use super::bindings::JsSyncClient;
use super::error::client_error;

#[wasm_bindgen(js_class = SyncClient)]
impl JsSyncClient {
    /// Undoes this client's latest step of edits with a new edit; `null` when there is none.
    pub fn undo(&self) -> Result<JsValue, JsValue> {
        self.inner.undo().map(client_seq).map_err(client_error)
    }

    /// Redoes the latest undone step with a new edit; `null` when there is none.
    pub fn redo(&self) -> Result<JsValue, JsValue> {
        self.inner.redo().map(client_seq).map_err(client_error)
    }

    /// Whether `undo()` would change something now.
    #[wasm_bindgen(js_name = canUndo)]
    pub fn can_undo(&self) -> bool {
        self.inner.can_undo()
    }

    /// Whether `redo()` would change something now.
    #[wasm_bindgen(js_name = canRedo)]
    pub fn can_redo(&self) -> bool {
        self.inner.can_redo()
    }

    /// The next edit starts a new undo step.
    #[wasm_bindgen(js_name = stopCapturing)]
    pub fn stop_capturing(&self) -> Result<(), JsValue> {
        self.inner.stop_capturing().map_err(client_error)
    }

    /// Calls `f`; its edits are undone as one step. Returns what `f` returns, rethrows what it
    /// throws.
    pub fn transact(&self, f: &js_sys::Function) -> Result<JsValue, JsValue> {
        self.inner
            .transact(|| f.call0(&JsValue::UNDEFINED))
            .map_err(client_error)?
    }
}

/// The new edit's `clientSeq`, or `null`.
fn client_seq(done: Option<u64>) -> JsValue {
    done.map_or(JsValue::NULL, |seq| JsValue::from_f64(seq as f64))
}
