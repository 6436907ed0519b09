//! The `SyncConnection` class JavaScript sees: many documents on one WebSocket (protocol
//! version 2). Conversion only, like [`super::bindings`]: each document it opens is the same
//! `SyncClient` class a client of its own is.

use wasm_bindgen::prelude::*;

use super::bindings::{apply_options, status_name, JsSyncClient, Options};
use super::connection::{SyncConnection, SyncConnectionBuilder};
use super::error::client_error;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Options of `new SyncConnection(url, options)` and `SyncConnection.connect`: the same as a
 * client's. With `persist`, the connection keeps one client id (taken back by the next page) and
 * a record per document in the IndexedDB `database`; the timers are every document's, and the
 * connection's pings and silence follow them. */
export type SyncConnectionOptions = SyncOptions;

export interface SyncConnection {
  /**
   * Opens `documentId` on the connection: a `SyncClient` with the same methods as a client of
   * its own; its `close()` closes just this document. Opening a document that is open
   * already gives another handle to it. `T` is the document's type (see `SyncClient`).
   */
  open<T = unknown>(documentId: string): Promise<SyncClient<T>>;
}
"#;

/// One connection to an eventsync server for any number of documents.
#[wasm_bindgen(js_name = SyncConnection)]
pub struct JsSyncConnection {
    inner: SyncConnection,
}

#[wasm_bindgen(js_class = SyncConnection)]
impl JsSyncConnection {
    /// Connects to `url` (`ws://host:port`, the endpoint `/sync`) and returns at once; documents
    /// opened on it work offline from the first moment. Keeps them in memory;
    /// `SyncConnection.connect` can persist them.
    #[wasm_bindgen(constructor)]
    pub fn new(
        url: String,
        #[wasm_bindgen(unchecked_optional_param_type = "SyncConnectionOptions")] options: JsValue,
    ) -> Result<JsSyncConnection, JsValue> {
        let inner = builder(url, options)?.connect().map_err(client_error)?;
        Ok(JsSyncConnection { inner })
    }

    /// Like `new SyncConnection(...)`, and with `persist: true` first opens IndexedDB: each
    /// document opened later starts from what the last page saved of it (edits made offline
    /// before a reload are sent once online).
    pub async fn connect(
        url: String,
        #[wasm_bindgen(unchecked_optional_param_type = "SyncConnectionOptions")] options: JsValue,
    ) -> Result<JsSyncConnection, JsValue> {
        let inner = builder(url, options)?.open().await.map_err(client_error)?;
        Ok(JsSyncConnection { inner })
    }

    /// Opens `documentId` on the connection: a `SyncClient` with the same methods as a client of
    /// its own; its `close()` closes just this document. Opening a document that is open
    /// already gives another handle to it. (Declared generic in `TYPES`, which wasm-bindgen
    /// cannot generate.)
    #[wasm_bindgen(skip_typescript)]
    pub fn open(
        &self,
        #[wasm_bindgen(js_name = documentId)] document_id: String,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let client = inner.open(document_id).await.map_err(client_error)?;
            Ok(JsSyncClient::from(client).into())
        })
    }

    /// The client id every document of the connection uses.
    #[wasm_bindgen(js_name = clientId)]
    pub fn client_id(&self) -> String {
        self.inner.client_id()
    }

    /// Connection status: the best of its documents'.
    #[wasm_bindgen(unchecked_return_type = "SyncStatus")]
    pub fn status(&self) -> String {
        status_name(self.inner.status()).to_owned()
    }

    /// Closes the connection and stops reconnecting; every document's waiting promises reject
    /// and its edits throw from now on. Pending edits stay saved (with `persist`).
    pub fn close(&self) {
        self.inner.close();
    }
}

/// The driver's builder for `new SyncConnection(url, options)` and `SyncConnection.connect`.
fn builder(url: String, options: JsValue) -> Result<SyncConnectionBuilder, JsValue> {
    let options = Options::from_js(options)?;
    Ok(apply_options!(SyncConnection::builder(url), options))
}
