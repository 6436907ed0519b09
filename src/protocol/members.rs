//! Reading messages from a parsed JSON object, member by member ([`Members`], [`FromJson`]).
//!
//! The messages a client reads now and then (`welcome`, `ack`, `snapshot`, `presence`, ...) are
//! read from a [`Value`] by these few functions instead of serde's derive: a derived reader is
//! compiled once for each way it is called (serde_json's text reader, `Value`), a large share of
//! the WebAssembly build (issue 17). What serde's derive did, these do: a missing field is
//! `missing field`, a member of the wrong kind `invalid type`, an unknown member is ignored, an
//! absent or `null` optional field is `None`. Frames that carry events, the bulk of a catch-up,
//! are read straight from their text (`read.rs`).

use std::collections::BTreeMap;

use serde::de::{Error as _, Unexpected};
use serde_json::{Error, Map, Value};

use super::unexpected;

/// A value read from JSON.
pub(crate) trait FromJson: Sized {
    /// Reads `value`; `invalid type` when it is of another kind.
    fn from_json(value: Value) -> Result<Self, Error>;
}

/// The members of a JSON object, taken out one by one.
pub(crate) struct Members(Map<String, Value>);

impl Members {
    /// The members of `value`; an error naming `what` when it is not an object.
    pub(crate) fn of(value: Value, what: &'static str) -> Result<Members, Error> {
        match value {
            Value::Object(members) => Ok(Members(members)),
            other => Err(Error::invalid_type(unexpected(&other), &what)),
        }
    }

    /// A required member.
    pub(crate) fn required<T: FromJson>(&mut self, key: &'static str) -> Result<T, Error> {
        match self.0.remove(key) {
            Some(value) => T::from_json(value),
            None => Err(Error::missing_field(key)),
        }
    }

    /// An optional member: `None` when absent or `null`.
    pub(crate) fn optional<T: FromJson>(&mut self, key: &str) -> Result<Option<T>, Error> {
        self.0.remove(key).map_or(Ok(None), Option::<T>::from_json)
    }

    /// The members not taken.
    pub(crate) fn into_map(self) -> Map<String, Value> {
        self.0
    }

    /// A member with a default (serde's `#[serde(default)]`): the default when absent; `null` is
    /// read as the type reads it.
    pub(crate) fn or_default<T: FromJson + Default>(&mut self, key: &str) -> Result<T, Error> {
        self.0.remove(key).map_or(Ok(T::default()), T::from_json)
    }
}

impl FromJson for Value {
    fn from_json(value: Value) -> Result<Self, Error> {
        Ok(value)
    }
}

impl<T: FromJson> FromJson for Option<T> {
    fn from_json(value: Value) -> Result<Self, Error> {
        match value {
            Value::Null => Ok(None),
            value => T::from_json(value).map(Some),
        }
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(value: Value) -> Result<Self, Error> {
        match value {
            Value::Array(items) => items.into_iter().map(T::from_json).collect(),
            other => Err(Error::invalid_type(unexpected(&other), &"a sequence")),
        }
    }
}

impl FromJson for String {
    fn from_json(value: Value) -> Result<Self, Error> {
        match value {
            Value::String(s) => Ok(s),
            other => Err(Error::invalid_type(unexpected(&other), &"a string")),
        }
    }
}

impl FromJson for bool {
    fn from_json(value: Value) -> Result<Self, Error> {
        match value {
            Value::Bool(b) => Ok(b),
            other => Err(Error::invalid_type(unexpected(&other), &"a boolean")),
        }
    }
}

impl FromJson for u64 {
    fn from_json(value: Value) -> Result<Self, Error> {
        match &value {
            Value::Number(n) => n.as_u64().ok_or_else(|| match n.as_i64() {
                Some(i) => Error::invalid_value(Unexpected::Signed(i), &"a u64"),
                None => Error::invalid_type(Unexpected::Float(n.as_f64().unwrap_or(0.0)), &"u64"),
            }),
            other => Err(Error::invalid_type(unexpected(other), &"u64")),
        }
    }
}

impl FromJson for u32 {
    fn from_json(value: Value) -> Result<Self, Error> {
        let n = u64::from_json(value)?;
        u32::try_from(n).map_err(|_| Error::invalid_value(Unexpected::Unsigned(n), &"a u32"))
    }
}

impl FromJson for usize {
    fn from_json(value: Value) -> Result<Self, Error> {
        let n = u64::from_json(value)?;
        usize::try_from(n).map_err(|_| Error::invalid_value(Unexpected::Unsigned(n), &"a usize"))
    }
}

impl FromJson for f64 {
    fn from_json(value: Value) -> Result<Self, Error> {
        match &value {
            Value::Number(n) => Ok(n.as_f64().unwrap_or_default()),
            other => Err(Error::invalid_type(unexpected(other), &"f64")),
        }
    }
}

impl FromJson for BTreeMap<String, u64> {
    fn from_json(value: Value) -> Result<Self, Error> {
        match value {
            Value::Object(members) => members
                .into_iter()
                .map(|(key, value)| Ok((key, u64::from_json(value)?)))
                .collect(),
            other => Err(Error::invalid_type(unexpected(&other), &"a map")),
        }
    }
}

/// `impl Deserialize` for types read by [`FromJson`]: the value, then its reader (one reader
/// for every caller, the HTTP bodies and tests too).
macro_rules! deserialize_from_json {
    ($($type:ty),* $(,)?) => {$(
        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let value = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
                <$type as $crate::protocol::members::FromJson>::from_json(value)
                    .map_err(serde::de::Error::custom)
            }
        }
    )*};
}
pub(crate) use deserialize_from_json;
