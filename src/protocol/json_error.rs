//! [`JsonError`]: why JSON text, or a parsed JSON value, is not the message a reader expected.
//!
//! The readers of `members.rs` and `text.rs` report with serde's words ("invalid type: string
//! \"x\", expected u64", "missing field `type`") but build the text themselves: serde_json's
//! error, serde's `Unexpected` and Rust's `{:?}` quoting bring float formatting, Unicode tables
//! and `std::io`'s error texts into the WebAssembly build (issue 17), where none of them is
//! needed for a message. Strings are quoted as JSON quotes them ([`Quoted`]).

use std::fmt;

use serde::de::{Expected, Unexpected};

/// Why JSON text, or a parsed JSON value, is not the message expected.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonError(Box<str>);

impl JsonError {
    /// What is wrong, in serde's words.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonError({})", Quoted(&self.0))
    }
}

impl std::error::Error for JsonError {}

impl From<serde_json::Error> for JsonError {
    fn from(err: serde_json::Error) -> Self {
        JsonError(err.to_string().into())
    }
}

impl serde::de::Error for JsonError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        JsonError(msg.to_string().into())
    }

    fn invalid_type(unexpected: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Self::custom(format_args!(
            "invalid type: {}, expected {expected}",
            Described(unexpected)
        ))
    }

    fn invalid_value(unexpected: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Self::custom(format_args!(
            "invalid value: {}, expected {expected}",
            Described(unexpected)
        ))
    }
}

/// A string as a JSON string literal: in double quotes, with `"`, `\` and control characters
/// escaped. Messages quote names and ids with it instead of `{:?}`.
pub(crate) struct Quoted<'a>(pub &'a str);

/// A character as a JSON string literal of that one character (see [`Quoted`]).
pub(crate) struct QuotedChar(pub char);

impl fmt::Display for QuotedChar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Quoted(self.0.encode_utf8(&mut [0; 4])).fmt(f)
    }
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        let mut rest = self.0;
        while let Some(at) = rest.find(|c: char| c < ' ' || c == '"' || c == '\\') {
            f.write_str(&rest[..at])?;
            let c = rest.as_bytes()[at];
            match c {
                b'"' => f.write_str("\\\"")?,
                b'\\' => f.write_str("\\\\")?,
                b'\n' => f.write_str("\\n")?,
                b'\r' => f.write_str("\\r")?,
                b'\t' => f.write_str("\\t")?,
                b'\x08' => f.write_str("\\b")?,
                b'\x0c' => f.write_str("\\f")?,
                _ => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let escape = [
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[usize::from(c >> 4)],
                        HEX[usize::from(c & 15)],
                    ];
                    f.write_str(std::str::from_utf8(&escape).unwrap_or_default())?;
                }
            }
            rest = &rest[at + 1..];
        }
        f.write_str(rest)?;
        f.write_str("\"")
    }
}

/// A value as serde_json's errors describe it ("string \"x\"", "integer `5`", "null").
struct Described<'a>(Unexpected<'a>);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Unexpected::Bool(b) => write!(f, "boolean `{b}`"),
            Unexpected::Unsigned(n) => write!(f, "integer `{n}`"),
            Unexpected::Signed(n) => write!(f, "integer `{n}`"),
            Unexpected::Float(x) => match serde_json::Number::from_f64(x) {
                Some(n) => write!(f, "floating point `{n}`"),
                None => f.write_str("floating point"),
            },
            Unexpected::Char(c) => write!(f, "character {}", QuotedChar(c)),
            Unexpected::Str(s) => write!(f, "string {}", Quoted(s)),
            Unexpected::Bytes(_) => f.write_str("byte array"),
            Unexpected::Unit => f.write_str("null"),
            Unexpected::Option => f.write_str("Option value"),
            Unexpected::NewtypeStruct => f.write_str("newtype struct"),
            Unexpected::Seq => f.write_str("sequence"),
            Unexpected::Map => f.write_str("map"),
            Unexpected::Enum => f.write_str("enum"),
            Unexpected::UnitVariant => f.write_str("unit variant"),
            Unexpected::NewtypeVariant => f.write_str("newtype variant"),
            Unexpected::TupleVariant => f.write_str("tuple variant"),
            Unexpected::StructVariant => f.write_str("struct variant"),
            Unexpected::Other(other) => f.write_str(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::de::{Error as _, Unexpected};

    use super::{JsonError, Quoted};

    #[test]
    fn quotes_as_json_does() {
        for s in [
            "",
            "abc",
            "a\"b\\c",
            "line\nbreak\ttab\r",
            "\u{1}\u{1f}\u{8}\u{c}\u{7f}",
            "é ☃ 😀",
        ] {
            let ours = Quoted(s).to_string();
            assert_eq!(ours, serde_json::to_string(s).unwrap(), "{s}");
        }
    }

    #[test]
    fn describes_values_as_serde_json_does() {
        let cases = [
            Unexpected::Bool(true),
            Unexpected::Unsigned(7),
            Unexpected::Signed(-7),
            Unexpected::Float(1.5),
            Unexpected::Float(2.0),
            Unexpected::Str("a\"b"),
            Unexpected::Unit,
            Unexpected::Seq,
            Unexpected::Map,
            Unexpected::Other("number"),
        ];
        for unexpected in cases {
            let ours = JsonError::invalid_type(unexpected, &"u64").to_string();
            let theirs = serde_json::Error::invalid_type(unexpected, &"u64").to_string();
            assert_eq!(ours, theirs);
        }
    }
}
