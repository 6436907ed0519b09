//! Reading messages from a parsed JSON object member by member ([`Members`], [`FromJson`]), and
//! writing them as one ([`Object`], [`ToJson`]).
//!
//! The messages a client reads now and then (`welcome`, `ack`, `snapshot`, `presence`, ...),
//! the messages it writes and the state it saves are read from and written to a [`Value`] by
//! these few functions instead of serde's derive: a derived reader or writer is compiled once for
//! each way it is called (serde_json's text, `Value`), a large share of the WebAssembly build
//! (issue 17). What serde's derive did, these do: a missing field is `missing field`, a member of
//! the wrong kind `invalid type`, an unknown member is ignored, an absent or `null` optional
//! field is `None`; written objects leave out what serde's `skip_serializing_if` left out (their
//! members come in key order: JSON objects are unordered). Frames that carry events, the bulk of
//! a catch-up, are read by serde (`read.rs`).

use std::collections::BTreeMap;

use crate::protocol::JsonError as Error;
use serde::de::{Error as _, Unexpected};
use serde_json::{Map, Number, Value};

use super::unexpected;

/// A value read from JSON.
pub(crate) trait FromJson: Sized {
    /// Reads `value`; `invalid type` when it is of another kind.
    fn from_json(value: Value) -> Result<Self, Error>;
}

/// The members of `value`; `invalid type` naming `what` when it is not an object (every reader
/// of an object starts here).
pub(crate) fn object(value: Value, what: &'static str) -> Result<Map<String, Value>, Error> {
    match value {
        Value::Object(members) => Ok(members),
        other => Err(Error::invalid_type(unexpected(&other), &what)),
    }
}

/// The members of a JSON object, taken out one by one.
pub(crate) struct Members(Map<String, Value>);

impl Members {
    /// The members of `value`; an error naming `what` when it is not an object.
    pub(crate) fn of(value: Value, what: &'static str) -> Result<Members, Error> {
        object(value, what).map(Members)
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

impl<T: FromJson> FromJson for Box<T> {
    fn from_json(value: Value) -> Result<Self, Error> {
        T::from_json(value).map(Box::new)
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

impl FromJson for i64 {
    fn from_json(value: Value) -> Result<Self, Error> {
        match &value {
            Value::Number(n) => n.as_i64().ok_or_else(|| match n.as_u64() {
                Some(u) => Error::invalid_value(Unexpected::Unsigned(u), &"i64"),
                None => Error::invalid_type(Unexpected::Float(n.as_f64().unwrap_or(0.0)), &"i64"),
            }),
            other => Err(Error::invalid_type(unexpected(other), &"i64")),
        }
    }
}

impl FromJson for Map<String, Value> {
    fn from_json(value: Value) -> Result<Self, Error> {
        object(value, "a map")
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
        object(value, "a map")?
            .into_iter()
            .map(|(key, value)| Ok((key, u64::from_json(value)?)))
            .collect()
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

/// A value written as JSON: the other half of [`FromJson`], for the messages and the saved state
/// a client writes (one writer, `Value`'s, instead of serde's derive for each type).
pub(crate) trait ToJson {
    /// The value as JSON.
    fn to_json(&self) -> Value;
}

/// A JSON object being written.
#[derive(Default)]
pub(crate) struct Object(Map<String, Value>);

impl Object {
    /// An empty object.
    pub(crate) fn new() -> Object {
        Object::default()
    }

    /// An object with `members` already (serde's `flatten` of a map of other members).
    pub(crate) fn of(members: Map<String, Value>) -> Object {
        Object(members)
    }

    /// The member `key`.
    pub(crate) fn with(mut self, key: &str, value: &(impl ToJson + ?Sized)) -> Object {
        self.0.insert(key.to_owned(), value.to_json());
        self
    }

    /// The member `key` when `value` is some (serde's `skip_serializing_if = "Option::is_none"`).
    pub(crate) fn with_some<T: ToJson>(self, key: &str, value: &Option<T>) -> Object {
        match value {
            Some(value) => self.with(key, value),
            None => self,
        }
    }

    /// The object.
    pub(crate) fn done(self) -> Value {
        Value::Object(self.0)
    }
}

impl ToJson for Value {
    fn to_json(&self) -> Value {
        self.clone()
    }
}

impl ToJson for str {
    fn to_json(&self) -> Value {
        Value::String(self.to_owned())
    }
}

impl ToJson for String {
    fn to_json(&self) -> Value {
        Value::String(self.clone())
    }
}

impl ToJson for bool {
    fn to_json(&self) -> Value {
        Value::Bool(*self)
    }
}

impl ToJson for u64 {
    fn to_json(&self) -> Value {
        Value::from(*self)
    }
}

impl ToJson for i64 {
    fn to_json(&self) -> Value {
        Value::from(*self)
    }
}

impl ToJson for Map<String, Value> {
    fn to_json(&self) -> Value {
        Value::Object(self.clone())
    }
}

impl<T: ToJson> ToJson for Box<T> {
    fn to_json(&self) -> Value {
        (**self).to_json()
    }
}

impl ToJson for u32 {
    fn to_json(&self) -> Value {
        Value::from(*self)
    }
}

impl<T: ToJson + ?Sized> ToJson for &T {
    fn to_json(&self) -> Value {
        (**self).to_json()
    }
}

impl ToJson for f64 {
    fn to_json(&self) -> Value {
        Number::from_f64(*self).map_or(Value::Null, Value::Number)
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn to_json(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_json)
    }
}

impl<T: ToJson> ToJson for [T] {
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(T::to_json).collect())
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(&self) -> Value {
        self.as_slice().to_json()
    }
}

/// `impl Serialize` for types written by [`ToJson`]: their value, written (one writer for every
/// caller, the native stores and servers too).
macro_rules! serialize_to_json {
    ($($type:ty),* $(,)?) => {$(
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serde::Serialize::serialize(
                    &<$type as $crate::protocol::members::ToJson>::to_json(self),
                    s,
                )
            }
        }
    )*};
}
pub(crate) use serialize_to_json;

/// The readers of a struct whose members are plain fields, from one list of its members: a
/// [`FromJson`] (from a `Value`, what the WebAssembly build reads with) and a `Deserialize`
/// (from text, what native builds read the bulk of a catch-up with; each field by its own
/// `Deserialize`). A `required` member missing is `missing field`; a `default` one is the type's
/// default (`None` for an `Option`, which also reads `null`); other members are ignored.
///
/// ```text
/// read_members!(Event, "an event", {
///     id: String = "id" required,
///     document_id: String = "documentId" default,
/// });
/// ```
macro_rules! read_members {
    ($name:ident, $what:literal, {
        $($field:ident : $type:ty = $key:literal $mode:ident),* $(,)?
    }) => {
        impl $crate::protocol::members::FromJson for $name {
            fn from_json(value: serde_json::Value) -> Result<Self, crate::protocol::JsonError> {
                let members = $crate::protocol::members::object(value, $what)?;
                $(let mut $field: Option<$type> = None;)*
                for (key, value) in members {
                    match key.as_str() {
                        $($key => $field = Some(
                            <$type as $crate::protocol::members::FromJson>::from_json(value)?,
                        ),)*
                        _ => {}
                    }
                }
                Ok($name {
                    $($field: $crate::protocol::members::read_members!(
                        @take $mode $field $key crate::protocol::JsonError
                    ),)*
                })
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[allow(non_camel_case_types)]
                enum Key {
                    $($field,)*
                    Other,
                }
                impl<'de> serde::Deserialize<'de> for Key {
                    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                        struct Name;
                        impl serde::de::Visitor<'_> for Name {
                            type Value = Key;
                            fn expecting(
                                &self,
                                f: &mut std::fmt::Formatter,
                            ) -> std::fmt::Result {
                                f.write_str("a member name")
                            }
                            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Key, E> {
                                Ok(match name {
                                    $($key => Key::$field,)*
                                    _ => Key::Other,
                                })
                            }
                        }
                        d.deserialize_identifier(Name)
                    }
                }
                struct Members;
                impl<'de> serde::de::Visitor<'de> for Members {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$name, A::Error> {
                        $(let mut $field: Option<$type> = None;)*
                        while let Some(key) = map.next_key::<Key>()? {
                            match key {
                                $(Key::$field => $field = Some(map.next_value::<$type>()?),)*
                                Key::Other => {
                                    map.next_value::<serde::de::IgnoredAny>()?;
                                }
                            }
                        }
                        Ok($name {
                            $($field: $crate::protocol::members::read_members!(
                                @take $mode $field $key A::Error
                            ),)*
                        })
                    }
                }
                d.deserialize_map(Members)
            }
        }
    };
    (@take required $field:ident $key:literal $error:ty) => {
        $field.ok_or_else(|| <$error as serde::de::Error>::missing_field($key))?
    };
    (@take default $field:ident $key:literal $error:ty) => {
        $field.unwrap_or_default()
    };
}
pub(crate) use read_members;
