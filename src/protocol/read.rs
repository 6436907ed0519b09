//! Reading server frames straight from their text into [`ServerMessage`].
//!
//! Servers write a message's `type` first (and, in version 2, its `documentId` next): the
//! reader takes the `type`, then hands the rest of the object to the variant's derived reader
//! (`ExternallyTagged`) as it comes from serde_json's text reader. No `Value` of the frame is
//! built, and every variant's reader is compiled once, for the text reader alone (serde's derive
//! for an internally tagged enum buffers the frame in its own `Content` tree and compiles each
//! variant once more for it; reading through a `Value` compiles them for `Value`, a large share
//! of the WebAssembly build). A frame whose `type` is not first is read into a `Value`, written
//! again with its `type` first and read the same way.

use serde::de::value::StrDeserializer;
use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, Error as _, IgnoredAny, MapAccess, VariantAccess,
    Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::Value;

use super::{unexpected, ExternallyTagged, ServerMessage, SERVER_MESSAGE_TYPES};

/// A server frame's `documentId` (read only when `scoped`, version 2) and its message.
pub(super) type Read = (Option<String>, ServerMessage);

/// Reads a server frame; `scoped` (version 2) takes its `documentId` out of the message.
pub(super) fn read_server(text: &str, scoped: bool) -> Result<Read, serde_json::Error> {
    // serde_json skips a member no variant reads without its nesting limit, which the `Value`
    // below applies (section 11); the bulk of a catch-up, `events` frames, is read as before.
    let events = text.starts_with("{\"type\":\"event");
    if events || !nests_too_deep(text) {
        if let Ok(read) = read_type_first(text, scoped) {
            return Ok(read);
        }
    }
    // Not `type` first, too deep or not a valid frame: read it as JSON to say what is wrong, or
    // to put its `type` first.
    let value: Value = serde_json::from_str(text)?;
    let Value::Object(mut members) = value else {
        return Err(serde_json::Error::invalid_type(
            unexpected(&value),
            &"internally tagged enum ServerMessage",
        ));
    };
    let document_id = match scoped.then(|| members.remove("documentId")).flatten() {
        None => None,
        Some(Value::String(id)) => Some(id),
        Some(other) => {
            return Err(serde_json::Error::invalid_type(
                serde::de::Unexpected::Other(&other.to_string()),
                &"a documentId string",
            ))
        }
    };
    Ok((document_id, from_members(members)?))
}

/// True when `text` nests arrays and objects 128 levels deep or more, as serde_json's nesting
/// limit counts them (the outermost object is level 1).
fn nests_too_deep(text: &str) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0u32, false, false);
    for &byte in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth >= 128 {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A message from the members of its JSON object (see [`ServerMessage::from_value`]).
pub(super) fn from_members(
    mut members: serde_json::Map<String, Value>,
) -> Result<ServerMessage, serde_json::Error> {
    let kind = match members.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(other) => {
            return Err(serde_json::Error::invalid_type(
                unexpected(&other),
                &"a message type",
            ))
        }
        None => return Err(serde_json::Error::missing_field("type")),
    };
    if !SERVER_MESSAGE_TYPES.contains(&kind.as_str()) {
        return Ok(ServerMessage::Unknown);
    }
    let mut text = String::with_capacity(64);
    text.push_str("{\"type\":");
    text.push_str(&super::encode(&kind));
    for (key, member) in &members {
        text.push(',');
        text.push_str(&super::encode(key));
        text.push(':');
        text.push_str(&super::encode(member));
    }
    text.push('}');
    read_type_first(&text, false).map(|(_, message)| message)
}

/// Reads a frame whose first member is its `type`; an error for any other.
pub(super) fn read_type_first(text: &str, scoped: bool) -> Result<Read, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let read = deserializer.deserialize_map(TypeFirst { scoped })?;
    deserializer.end()?;
    Ok(read)
}

/// Reads the `type` member, then the message from the members after it.
struct TypeFirst {
    scoped: bool,
}

impl<'de> Visitor<'de> for TypeFirst {
    type Value = Read;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a message object starting with its type")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read, A::Error> {
        if map.next_key::<String>()?.as_deref() != Some("type") {
            return Err(A::Error::custom("the frame does not start with its type"));
        }
        let kind: String = map.next_value()?;
        let mut rest = Rest {
            map,
            scoped: self.scoped,
            document_id: None,
            kind,
        };
        let message = if SERVER_MESSAGE_TYPES.contains(&rest.kind.as_str()) {
            ExternallyTagged::deserialize(&mut rest)?
        } else {
            while rest.next_key::<IgnoredAny>()?.is_some() {
                rest.next_value::<IgnoredAny>()?;
            }
            ServerMessage::Unknown
        };
        Ok((rest.document_id, message))
    }
}

/// The members after `type`, as the externally tagged enum `{kind: {members}}` serde's derive
/// reads; `documentId` taken out when `scoped`.
struct Rest<A> {
    map: A,
    scoped: bool,
    document_id: Option<String>,
    kind: String,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Rest<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.map.next_key::<String>()? else {
                return Ok(None);
            };
            if self.scoped && key == "documentId" {
                self.document_id = Some(self.map.next_value()?);
                continue;
            }
            return seed.deserialize(StrDeserializer::new(&key)).map(Some);
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

impl<'de, A: MapAccess<'de>> Deserializer<'de> for &mut Rest<A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_map(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_enum(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

impl<'de, A: MapAccess<'de>> EnumAccess<'de> for &mut Rest<A> {
    type Error = A::Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), A::Error> {
        let variant = seed.deserialize(StrDeserializer::new(&self.kind))?;
        Ok((variant, self))
    }
}

impl<'de, A: MapAccess<'de>> VariantAccess<'de> for &mut Rest<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        Err(A::Error::custom("no message is a unit"))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, A::Error> {
        Err(A::Error::custom("no message is a tuple"))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_map(self)
    }
}
