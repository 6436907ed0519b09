//! JSON text to [`Value`]: [`parse`], the one JSON reader of the client.
//!
//! Natively this is serde_json's reader. The WebAssembly build reads with [`read`] instead, a
//! small reader written for `Value` alone: serde_json's reader, its exact float parser and the
//! float parser's tables were about a tenth of the gzipped build (issue 17), and a browser
//! already has an exactly rounding number reader (`parseFloat`, the one `JSON.parse` uses).
//! [`read`] reads what serde_json reads and refuses what it refuses (the same nesting limit, 128,
//! reported as serde_json reports it, so that [`super::FrameError::TooDeep`] still sees it):
//! `tests::reads_as_serde_json_does` compares the two on seeded random texts.

use crate::protocol::JsonError as Error;
use serde_json::Value;
#[cfg(any(test, target_arch = "wasm32"))]
use {
    serde::de::Error as _,
    serde_json::{Map, Number},
};

/// Parses JSON text.
#[cfg(not(target_arch = "wasm32"))]
pub fn parse(text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(Error::from)
}

/// Parses JSON text.
#[cfg(target_arch = "wasm32")]
pub fn parse(text: &str) -> Result<Value, Error> {
    read(text, |digits| Some(js_sys::Number::parse_float(digits)))
}

/// Writes a value as compact JSON text: the one JSON writer of the client.
pub fn write(value: &Value) -> String {
    serde_json::to_string(value).expect("a JSON value always serializes")
}

/// How deep arrays and objects may nest: serde_json's limit (128 is refused).
#[cfg(any(test, target_arch = "wasm32"))]
const MAX_NESTING: u32 = 128;

/// Reads `text` as one JSON value; `float` reads the text of a number with a fraction or an
/// exponent, or an integer too large for 64 bits, rounding exactly.
#[cfg(any(test, target_arch = "wasm32"))]
pub(crate) fn read(text: &str, float: fn(&str) -> Option<f64>) -> Result<Value, Error> {
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        at: 0,
        float,
        members: Vec::new(),
    };
    let value = reader.value(MAX_NESTING)?;
    reader.skip_space();
    if reader.at < reader.bytes.len() {
        return Err(reader.error("trailing characters"));
    }
    Ok(value)
}

#[cfg(any(test, target_arch = "wasm32"))]
struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    float: fn(&str) -> Option<f64>,
    /// The members of the objects being read, innermost last (one buffer for the whole text).
    members: Vec<(String, Value)>,
}

/// Up to this many members an object is built by inserting them one by one; a larger one is
/// built at once from its members: sorted once, then laid out without a search per member.
/// (This build's sort, `optimize_for_size`, is a plain merge sort that does not notice members
/// already in key order, as a writer of a map sends them: about n log2(n) / 2 comparisons, fewer
/// than the tree searches of inserting them.) A repeated key keeps its last value either way.
#[cfg(any(test, target_arch = "wasm32"))]
const FEW_MEMBERS: usize = 16;

#[cfg(any(test, target_arch = "wasm32"))]
impl Reader<'_> {
    fn error(&self, what: &str) -> Error {
        Error::custom(format_args!("{what} at byte {}", self.at))
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.bytes.get(self.at).copied()
    }

    /// Takes `word` (after its first byte, already seen).
    fn word(&mut self, word: &str, value: Value) -> Result<Value, Error> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected value"))
        }
    }

    fn value(&mut self, depth: u32) -> Result<Value, Error> {
        match self.peek() {
            None => Err(self.error("EOF while parsing a value")),
            Some(b'n') => self.word("null", Value::Null),
            Some(b't') => self.word("true", Value::Bool(true)),
            Some(b'f') => self.word("false", Value::Bool(false)),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            Some(b'[') => {
                let depth = self.nest(depth)?;
                let mut items = Vec::new();
                if self.peek() == Some(b']') {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth)?);
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Value::Array(items));
                        }
                        _ => return Err(self.error("expected `,` or `]`")),
                    }
                }
            }
            Some(b'{') => {
                let depth = self.nest(depth)?;
                if self.peek() == Some(b'}') {
                    self.at += 1;
                    return Ok(Value::Object(Map::new()));
                }
                let start = self.members.len();
                loop {
                    if self.peek() != Some(b'"') {
                        return Err(self.error("key must be a string"));
                    }
                    let key = self.string()?;
                    if self.peek() != Some(b':') {
                        return Err(self.error("expected `:`"));
                    }
                    self.at += 1;
                    let value = self.value(depth)?;
                    self.members.push((key, value));
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Value::Object(self.object(start)));
                        }
                        _ => return Err(self.error("expected `,` or `}`")),
                    }
                }
            }
            Some(_) => Err(self.error("expected value")),
        }
    }

    /// The object of the members read from `start` on ([`FEW_MEMBERS`]).
    fn object(&mut self, start: usize) -> Map<String, Value> {
        let members = self.members.drain(start..);
        if members.len() > FEW_MEMBERS {
            return members.collect();
        }
        let mut object = Map::new();
        for (key, value) in members {
            object.insert(key, value);
        }
        object
    }

    /// Enters an array or object: the depth left inside it.
    fn nest(&mut self, depth: u32) -> Result<u32, Error> {
        self.at += 1;
        if depth <= 1 {
            // serde_json's words: FrameError::TooDeep recognizes them.
            return Err(self.error("recursion limit exceeded"));
        }
        Ok(depth - 1)
    }

    /// A string, its opening quote next.
    fn string(&mut self) -> Result<String, Error> {
        self.at += 1;
        let mut out = String::new();
        let mut start = self.at;
        loop {
            let Some(&byte) = self.bytes.get(self.at) else {
                return Err(self.error("EOF while parsing a string"));
            };
            match byte {
                b'"' => {
                    out.push_str(&self.text[start..self.at]);
                    self.at += 1;
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(&self.text[start..self.at]);
                    self.at += 1;
                    self.escape(&mut out)?;
                    start = self.at;
                }
                0..=0x1f => {
                    return Err(self
                        .error("control character (\\u0000-\\u001F) found while parsing a string"))
                }
                _ => self.at += 1,
            }
        }
    }

    /// An escape, after its backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), Error> {
        let Some(&byte) = self.bytes.get(self.at) else {
            return Err(self.error("EOF while parsing a string"));
        };
        self.at += 1;
        let c = match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex()?;
                match unit {
                    0xD800..=0xDBFF => {
                        if !self.bytes[self.at..].starts_with(b"\\u") {
                            return Err(self.error("unexpected end of hex escape"));
                        }
                        self.at += 2;
                        let low = self.hex()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.error("lone leading surrogate in hex escape"));
                        }
                        let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(c).ok_or_else(|| self.error("invalid unicode code point"))?
                    }
                    0xDC00..=0xDFFF => {
                        return Err(self.error("lone leading surrogate in hex escape"))
                    }
                    _ => char::from_u32(unit)
                        .ok_or_else(|| self.error("invalid unicode code point"))?,
                }
            }
            _ => return Err(self.error("invalid escape")),
        };
        out.push(c);
        Ok(())
    }

    /// Four hex digits.
    fn hex(&mut self) -> Result<u32, Error> {
        let digits = self
            .bytes
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.error("EOF while parsing a string"))?;
        let mut unit = 0;
        for &digit in digits {
            let value = (digit as char)
                .to_digit(16)
                .ok_or_else(|| self.error("invalid escape"))?;
            unit = unit * 16 + value;
        }
        self.at += 4;
        Ok(unit)
    }

    /// A number: an integer that fits 64 bits as one (`-0` is a float, as serde_json reads it),
    /// anything else as the nearest float.
    fn number(&mut self) -> Result<Number, Error> {
        let start = self.at;
        let negative = self.bytes[self.at] == b'-';
        if negative {
            self.at += 1;
        }
        match self.bytes.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("invalid number")),
        }
        let mut integer = true;
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            if !matches!(self.bytes.get(self.at), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            self.digits();
            integer = false;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            if !matches!(self.bytes.get(self.at), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            self.digits();
            integer = false;
        }
        let text = &self.text[start..self.at];
        if integer {
            let digits = &text[negative as usize..];
            if let Ok(n) = digits.parse::<u64>() {
                if !negative {
                    return Ok(n.into());
                }
                if n != 0 && n <= 1 << 63 {
                    return Ok((n as i64).wrapping_neg().into());
                }
            }
        }
        (self.float)(text)
            .and_then(Number::from_f64)
            .ok_or_else(|| self.error("number out of range"))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn ours(text: &str) -> Result<Value, Error> {
        read(text, |digits| digits.parse().ok())
    }

    /// Same value, or both an error (and a nesting error where serde_json's is one).
    fn check(text: &str) {
        let theirs = serde_json::from_str::<Value>(text);
        let ours = ours(text);
        match (&theirs, &ours) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "{text:?}");
                // The same kind of number, down to the sign of a zero.
                assert_eq!(a.to_string(), b.to_string(), "{text:?}");
            }
            (Err(a), Err(b)) => {
                let deep = |e: &str| e.starts_with("recursion limit exceeded");
                assert_eq!(
                    deep(&a.to_string()),
                    deep(b.message()),
                    "{text:?}: {a} / {b}"
                );
            }
            _ => panic!("{text:?}: serde_json {theirs:?}, ours {ours:?}"),
        }
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            "null",
            "true",
            "false",
            " 1 ",
            "-1",
            "-0",
            "0",
            "-0.0",
            "1.5",
            "1e3",
            "1E-3",
            "-1.25e+2",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "1e400",
            "-1e400",
            "4.9e-324",
            "1e-400",
            "0.1",
            "123456789012345678901234567890",
            "2.2250738585072011e-308",
            r#""a""#,
            r#""\u00e9\n\t\"\\\/\b\f\r""#,
            r#""\ud83d\ude00""#,
            r#""é😀""#,
            "[]",
            "[1,2]",
            "{}",
            r#"{"a":1,"b":[true,null],"a":2}"#,
            r#"{"c":1,"a":2,"b":3,"a":4,"c":{"y":5,"x":6,"y":7}}"#,
            // More than FEW_MEMBERS, out of order and repeated, with small objects inside.
            r#"{"k":1,"j":2,"i":3,"h":4,"g":5,"f":6,"e":7,"d":8,"c":9,"b":10,"a":11,"k":12,"l":{"b":1,"a":2,"b":3},"m":13,"n":14,"o":15,"p":16,"q":17,"a":18}"#,
            " [ 1 , { } ] ",
            // Refused.
            "",
            " ",
            "nul",
            "tru",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "[1,]",
            "[1 2]",
            "{,}",
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{a:1}"#,
            r#"{"a":1,}"#,
            "[",
            "]",
            "{",
            "}",
            r#""abc"#,
            "\"a\u{1}b\"",
            r#""\x""#,
            r#""\u12""#,
            r#""\ud83d""#,
            r#""\ud83dx""#,
            r#""\ude00""#,
            r#""\ud83d\u0041""#,
            "1 2",
            "[]]",
            "nulll",
            "NaN",
            "Infinity",
        ] {
            check(text);
        }
        for depth in [126, 127, 128, 129, 200] {
            check(&format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
            check(&format!(
                "{}1{}",
                r#"{"a":"#.repeat(depth),
                "}".repeat(depth)
            ));
        }
    }

    /// Random values written by serde_json, then cut and changed byte by byte.
    #[test]
    fn reads_as_serde_json_does() {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let pieces = [
            "0",
            "-0",
            "1",
            "-1",
            "12",
            "1.5",
            "-2.5e-3",
            "1e22",
            "9007199254740993",
            "18446744073709551616",
            "-9223372036854775809",
            "3.141592653589793",
            "5e-324",
            "1.7976931348623157e308",
            "\"\"",
            "\"a\\\"b\"",
            "\"\\u00e9\"",
            "\"\\ud83d\\ude00\"",
            "\"é\"",
            "true",
            "false",
            "null",
        ];
        let alphabet = b"[]{},:\"\\-+.0123456789eEuabcdfnrtl \t\n";
        for _ in 0..20_000 {
            let mut text = String::new();
            random_value(&mut rng, &pieces, &mut text, 0);
            check(&text);
            let mut bytes = text.into_bytes();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..=bytes.len());
                match rng.random_range(0..3) {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
                    _ => bytes.truncate(at),
                }
            }
            if let Ok(text) = String::from_utf8(bytes) {
                check(&text);
            }
        }
    }

    fn random_value(rng: &mut ChaCha8Rng, pieces: &[&str], out: &mut String, depth: u32) {
        match rng.random_range(0..if depth > 4 { 1 } else { 3 }) {
            0 => out.push_str(pieces[rng.random_range(0..pieces.len())]),
            1 => {
                out.push('[');
                for i in 0..rng.random_range(0..4) {
                    if i > 0 {
                        out.push(',');
                    }
                    random_value(rng, pieces, out, depth + 1);
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                for i in 0..rng.random_range(0..4) {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(["\"a\"", "\"b\"", "\"\\u0061\""][rng.random_range(0..3)]);
                    out.push(':');
                    random_value(rng, pieces, out, depth + 1);
                }
                out.push('}');
            }
        }
    }
}
