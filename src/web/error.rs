//! Rust errors to JavaScript `Error` objects with clear messages: the one place they cross.

use wasm_bindgen::JsValue;

use super::driver::ClientError;

/// A JavaScript `Error` with `message`; `name` says which kind it is.
pub(crate) fn js_error(name: &str, message: impl std::fmt::Display) -> JsValue {
    let error = js_sys::Error::new(&message.to_string());
    error.set_name(name);
    error.into()
}

/// A client error as a JavaScript `Error` (`name` is `EventsyncError`, `code` the protocol code
/// when the server gave one, or the one that says the same of a refused presence state).
pub(crate) fn client_error(err: ClientError) -> JsValue {
    let code = match &err {
        ClientError::Refused {
            code: Some(code), ..
        } => Some(*code),
        ClientError::Presence(presence) => Some(presence.code()),
        _ => None,
    };
    let code = code.and_then(|code| {
        serde_json::to_value(code)
            .ok()
            .and_then(|code| code.as_str().map(str::to_owned))
    });
    let error = js_error("EventsyncError", &err);
    if let Some(code) = code {
        let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    }
    error
}

/// An argument JavaScript passed that does not convert (a malformed patch, bad options).
pub(crate) fn invalid_argument(what: &str, err: impl std::fmt::Display) -> JsValue {
    js_error("TypeError", format!("invalid {what}: {err}"))
}
