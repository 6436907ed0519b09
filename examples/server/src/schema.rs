//! JSON Schema validation without code: `--schema 'PATTERN=FILE'` checks every document whose id
//! matches `PATTERN` (an id, `prefix*`, or `*`, as in tokens) against the JSON Schema in `FILE`
//! after each edit, HTTP write and database change. An edit that would leave the document
//! invalid is refused with `invalid_document` and nothing of it is stored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::auth::validate_document_pattern;

/// A schema and the documents it applies to.
#[derive(Clone)]
pub struct SchemaRule {
    pattern: String,
    source: PathBuf,
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for SchemaRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRule")
            .field("pattern", &self.pattern)
            .field("source", &self.source)
            .finish()
    }
}

/// Why a `--schema` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Not `PATTERN=FILE`, or a bad pattern.
    #[error("--schema {given:?}: {reason}")]
    Flag {
        /// The flag's value.
        given: String,
        /// What is wrong.
        reason: String,
    },
    /// The file could not be read or is not JSON.
    #[error("schema {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file is JSON but not a valid JSON Schema.
    #[error("schema {path} is not a valid JSON Schema: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl SchemaRule {
    /// A rule for the documents `pattern` covers, from a schema given as JSON.
    pub fn new(pattern: &str, schema: &Value) -> Result<Self, SchemaError> {
        Self::compile(pattern, schema, PathBuf::from("(inline)"))
    }

    /// Reads a `--schema` flag: `PATTERN=FILE`.
    pub fn from_flag(flag: &str) -> Result<Self, SchemaError> {
        let bad = |reason: &str| SchemaError::Flag {
            given: flag.to_owned(),
            reason: reason.to_owned(),
        };
        let (pattern, file) = flag
            .split_once('=')
            .ok_or_else(|| bad("expected PATTERN=FILE, for example 'todo-*=todo.schema.json'"))?;
        let path = Path::new(file);
        let text = std::fs::read_to_string(path).map_err(|e| SchemaError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let schema: Value = serde_json::from_str(&text).map_err(|e| SchemaError::File {
            path: path.to_owned(),
            reason: format!("not JSON: {e}"),
        })?;
        Self::compile(pattern, &schema, path.to_owned())
    }

    fn compile(pattern: &str, schema: &Value, source: PathBuf) -> Result<Self, SchemaError> {
        validate_document_pattern(pattern).map_err(|reason| SchemaError::Flag {
            given: format!("{pattern}={}", source.display()),
            reason: format!("bad document pattern: {reason}"),
        })?;
        let validator = jsonschema::validator_for(schema).map_err(|e| SchemaError::Invalid {
            path: source.clone(),
            reason: e.to_string(),
        })?;
        Ok(SchemaRule {
            pattern: pattern.to_owned(),
            source,
            validator: Arc::new(validator),
        })
    }

    /// Whether the rule applies to `document_id`.
    pub fn covers(&self, document_id: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => document_id.starts_with(prefix),
            None => self.pattern == document_id,
        }
    }

    /// Checks a document: `Err` names the first few places it breaks the schema.
    pub fn validate(&self, document: &Value) -> Result<(), String> {
        // The common case without collecting anything; the errors only for a refusal.
        if self.validator.is_valid(document) {
            return Ok(());
        }
        let errors = self.validator.iter_errors(document);
        let first: Vec<String> = errors
            .take(3)
            .map(|e| {
                let at = e.instance_path().to_string();
                let at = if at.is_empty() { "/".to_owned() } else { at };
                format!("at {at}: {e}")
            })
            .collect();
        Err(format!(
            "the document would not match the schema {}: {}",
            self.source.display(),
            first.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn todo_rule() -> SchemaRule {
        SchemaRule::new(
            "todo-*",
            &json!({
                "type": "object",
                "required": ["items"],
                "properties": {"items": {"type": "array", "items": {"type": "string", "maxLength": 5}}}
            }),
        )
        .unwrap()
    }

    #[test]
    fn patterns_cover_as_token_patterns_do() {
        let rule = todo_rule();
        assert!(rule.covers("todo-1"));
        assert!(!rule.covers("notes"));
        let exact = SchemaRule::new("notes", &json!(true)).unwrap();
        assert!(exact.covers("notes") && !exact.covers("notes-2"));
    }

    #[test]
    fn invalid_documents_are_named_with_where_they_break() {
        let rule = todo_rule();
        assert_eq!(rule.validate(&json!({"items": ["milk"]})), Ok(()));
        let err = rule.validate(&json!({"items": ["milk", 7]})).unwrap_err();
        assert!(err.contains("/items/1"), "{err}");
        let err = rule.validate(&json!({})).unwrap_err();
        assert!(err.contains("items"), "{err}");
    }

    #[test]
    fn bad_flags_and_schemas_are_clear_errors() {
        assert!(matches!(
            SchemaRule::from_flag("no-equals"),
            Err(SchemaError::Flag { .. })
        ));
        assert!(matches!(
            SchemaRule::from_flag("a=/nonexistent/schema.json"),
            Err(SchemaError::File { .. })
        ));
        assert!(matches!(
            SchemaRule::new("a", &json!({"type": 12})),
            Err(SchemaError::Invalid { .. })
        ));
        assert!(matches!(
            SchemaRule::new("a b", &json!(true)),
            Err(SchemaError::Flag { .. })
        ));
    }
}
