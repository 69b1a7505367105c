//! Caveat context values: the typed, JSON-shaped values bound on a relationship or given with a request.

use std::collections::BTreeMap;
use std::fmt;

/// Named caveat parameters and their values.
pub type ContextMap = BTreeMap<String, ContextValue>;

/// One context value, shaped like JSON (as SpiceDB's `google.protobuf.Struct` is).
#[derive(Debug, Clone, PartialEq)]
pub enum ContextValue {
    /// JSON `null`.
    Null,
    /// JSON `true` / `false`.
    Bool(bool),
    /// A number; integers are kept exactly when they fit.
    Int(i64),
    /// A non-negative integer too large for `i64`.
    UInt(u64),
    /// Any other number.
    Double(f64),
    /// A string.
    String(String),
    /// A list.
    List(Vec<ContextValue>),
    /// An object.
    Map(ContextMap),
}

impl ContextValue {
    /// Converts from parsed JSON.
    pub fn from_json(value: &serde_json::Value) -> ContextValue {
        match value {
            serde_json::Value::Null => ContextValue::Null,
            serde_json::Value::Bool(b) => ContextValue::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    ContextValue::Int(i)
                } else if let Some(u) = n.as_u64() {
                    ContextValue::UInt(u)
                } else {
                    ContextValue::Double(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => ContextValue::String(s.clone()),
            serde_json::Value::Array(items) => {
                ContextValue::List(items.iter().map(ContextValue::from_json).collect())
            }
            serde_json::Value::Object(map) => ContextValue::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), ContextValue::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Converts to JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ContextValue::Null => serde_json::Value::Null,
            ContextValue::Bool(b) => serde_json::Value::Bool(*b),
            ContextValue::Int(i) => serde_json::Value::from(*i),
            ContextValue::UInt(u) => serde_json::Value::from(*u),
            ContextValue::Double(d) => serde_json::Number::from_f64(*d)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            ContextValue::String(s) => serde_json::Value::String(s.clone()),
            ContextValue::List(items) => {
                serde_json::Value::Array(items.iter().map(ContextValue::to_json).collect())
            }
            ContextValue::Map(map) => serde_json::Value::Object(
                map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
            ),
        }
    }

    /// Parses a JSON object into a context map.
    pub fn parse_object(text: &str) -> Result<ContextMap, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("invalid JSON context: {e}"))?;
        match ContextValue::from_json(&value) {
            ContextValue::Map(map) => Ok(map),
            _ => Err("caveat context must be a JSON object".to_string()),
        }
    }
}

impl fmt::Display for ContextValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

/// Prints a context map as compact JSON with sorted keys.
pub(crate) fn context_to_json_string(map: &ContextMap) -> String {
    ContextValue::Map(map.clone()).to_json().to_string()
}
