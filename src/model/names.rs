//! SpiceDB's syntax rules for type, relation, caveat names and object ids.

/// The subject id that means "every subject of this type".
pub const WILDCARD: &str = "*";
/// The subject relation that means "the subject object itself".
pub const ELLIPSIS: &str = "...";
/// Longest object id accepted (as SpiceDB).
pub const MAX_OBJECT_ID_LEN: usize = 1024;

/// A name or id that breaks the syntax rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} `{value}` is invalid: {rule}")]
pub struct NameError {
    /// What was being validated (`object type`, `relation`, ...).
    pub kind: &'static str,
    /// The rejected text.
    pub value: String,
    /// The rule it breaks.
    pub rule: &'static str,
}

const SEGMENT_RULE: &str = "it must be 3 to 64 characters of lowercase letters, digits and `_`, start with a letter and not end with `_`";
const TYPE_RULE: &str = "it must be `name` or `prefix/name`, each part 3 to 64 characters of lowercase letters, digits and `_`, starting with a letter and not ending with `_`";
const ID_RULE: &str = "ids are 1 to 1024 characters of letters, digits and `/ _ | - = +`";

/// `[a-z][a-z0-9_]{1,max_mid}[a-z0-9]`
fn is_segment(s: &str, max_len: usize) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    bytes.len() >= 3
        && bytes.len() <= max_len
        && first.is_ascii_lowercase()
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

fn is_namespaced(s: &str) -> bool {
    let mut parts = s.split('/').peekable();
    while let Some(part) = parts.next() {
        let max = if parts.peek().is_some() { 63 } else { 64 };
        if !is_segment(part, max) {
            return false;
        }
    }
    true
}

/// Validates an object type (definition) name, with optional `prefix/` parts.
pub fn validate_object_type(value: &str) -> Result<(), NameError> {
    if is_namespaced(value) {
        Ok(())
    } else {
        Err(NameError {
            kind: "object type",
            value: value.to_string(),
            rule: TYPE_RULE,
        })
    }
}

/// Validates a caveat name (same rule as object types).
pub fn validate_caveat_name(value: &str) -> Result<(), NameError> {
    if is_namespaced(value) {
        Ok(())
    } else {
        Err(NameError {
            kind: "caveat name",
            value: value.to_string(),
            rule: TYPE_RULE,
        })
    }
}

/// Validates a relation or permission name.
pub fn validate_relation_name(value: &str) -> Result<(), NameError> {
    if is_segment(value, 64) {
        Ok(())
    } else {
        Err(NameError {
            kind: "relation",
            value: value.to_string(),
            rule: SEGMENT_RULE,
        })
    }
}

fn is_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_OBJECT_ID_LEN
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'|' | b'-' | b'=' | b'+')
        })
}

/// Validates a resource object id (no wildcard).
pub fn validate_object_id(value: &str) -> Result<(), NameError> {
    if is_id(value) {
        Ok(())
    } else {
        Err(NameError {
            kind: "object id",
            value: value.to_string(),
            rule: ID_RULE,
        })
    }
}

/// Validates a subject object id (an id or the wildcard `*`).
pub fn validate_subject_id(value: &str) -> Result<(), NameError> {
    if value == WILDCARD || is_id(value) {
        Ok(())
    } else {
        Err(NameError {
            kind: "subject id",
            value: value.to_string(),
            rule: ID_RULE,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        assert!(validate_object_type("user").is_ok());
        assert!(validate_object_type("some/nested/path").is_ok());
        assert!(validate_object_type("ab").is_err());
        assert!(validate_object_type("User").is_err());
        assert!(validate_object_type("user_").is_err());
        assert!(validate_object_type("/user").is_err());
        assert!(validate_object_type("").is_err());
    }

    #[test]
    fn ids() {
        assert!(validate_object_id("--=base64YWZz+/|_").is_ok());
        assert!(validate_object_id("*").is_err());
        assert!(validate_subject_id("*").is_ok());
        assert!(validate_object_id("a b").is_err());
        assert!(validate_object_id(&"a".repeat(1025)).is_err());
    }
}
