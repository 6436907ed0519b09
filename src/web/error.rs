//! Rust errors to JavaScript `Error` objects with clear messages: the one place they cross.

use wasm_bindgen::JsValue;

use super::driver::ClientError;
use crate::protocol::ErrorCode;

/// A JavaScript `Error` with `message`; `name` says which kind it is.
pub(crate) fn js_error(name: &str, message: impl std::fmt::Display) -> JsValue {
    let error = js_sys::Error::new(&message.to_string());
    error.set_name(name);
    error.into()
}

/// A client error as a JavaScript `Error`: `name` is `EventsyncError`, and `code` (always set)
/// one of `ClientErrorCode`: the protocol's code when there is one (the server's refusal, an edit
/// that does not apply, a refused presence state), else `closed`, `timeout`,
/// `invalid_argument`, `storage` or, from [`unsafe_integer`], `unsafe_integer`.
pub(crate) fn client_error(err: ClientError) -> JsValue {
    let code = match &err {
        ClientError::Refused { code, .. } => protocol_code(code.unwrap_or(ErrorCode::Unknown)),
        ClientError::Presence(presence) => protocol_code(presence.code()),
        ClientError::Session { code, .. } => protocol_code(*code),
        ClientError::Store(_) => "storage".to_owned(),
        ClientError::Closed => "closed".to_owned(),
        ClientError::InvalidArgument(_) => "invalid_argument".to_owned(),
        ClientError::Timeout(_) => "timeout".to_owned(),
    };
    coded(js_error("EventsyncError", &err), &code)
}

/// JSON that JavaScript cannot hold as it is (an integer beyond 2^53 - 1, which a JavaScript
/// number would round): an `EventsyncError` with the code `unsafe_integer`.
pub(crate) fn unsafe_integer(err: String) -> JsValue {
    coded(js_error("EventsyncError", err), "unsafe_integer")
}

/// In place of an event that JavaScript cannot hold (`err` says why, naming the number): an
/// `error` event (its `type` is `"error"`) that is also the [`unsafe_integer`] error, so that the
/// event's listeners hear of it and the events after it still arrive.
pub(crate) fn unsafe_event(err: String) -> JsValue {
    let error = unsafe_integer(err);
    let _ = js_sys::Reflect::set(&error, &"type".into(), &"error".into());
    error
}

/// An argument JavaScript passed that does not convert (a malformed patch, bad options): a
/// `TypeError` with the code `invalid_argument`.
pub(crate) fn invalid_argument(what: &str, err: impl std::fmt::Display) -> JsValue {
    coded(
        js_error("TypeError", format!("invalid {what}: {err}")),
        "invalid_argument",
    )
}

/// A JavaScript number given for a sequence number or a count: a non-negative integer that a
/// JavaScript number holds exactly. The number is written as JavaScript writes it (Rust's float
/// formatting is not compiled in for one message).
pub(crate) fn to_u64(number: f64, what: &str) -> Result<u64, JsValue> {
    if number >= 0.0 && number.fract() == 0.0 && number <= 9_007_199_254_740_991.0 {
        Ok(number as u64)
    } else {
        let text = js_sys::Number::from(number)
            .to_string_with_radix(10)
            .map(String::from)
            .unwrap_or_default();
        Err(invalid_argument(
            what,
            format!("{text} is not a non-negative integer"),
        ))
    }
}

fn protocol_code(code: ErrorCode) -> String {
    code.to_string()
}

fn coded(error: JsValue, code: &str) -> JsValue {
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    error
}
