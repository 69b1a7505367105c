//! The validation-file model (SpiceDB's YAML format) and where each part sits in the file.
//!
//! Keys, as SpiceDB's `pkg/validationfile` reads them:
//! - `schema:` (inline text) or `schemaFile:` (a path relative to the file, which must stay
//!   inside the file's directory); giving both is an error;
//! - `relationships:` one relationship per line; blank lines and `//` comment lines are skipped;
//! - `assertions:` a map of `assertTrue` / `assertFalse` / `assertCaveated` lists, each item
//!   `resource#permission@subject`, optionally followed by ` with {json context}`;
//! - `validation:` a map of `resource#permission` to a list of expected-subject strings
//!   (see `expected`); `null` means none.
//!
//! Two extensions: `assertions:` and `validation:` may also be given as a YAML string holding
//! the map (the form SpiceDB's developer API takes them in; its file loader does not), and
//! unknown keys inside `assertions` are refused rather than ignored, so a misspelled
//! `assertTure:` cannot make a file pass without checking anything.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::model::{ContextMap, ContextValue, Relationship};
use crate::schema::Span;

use super::error::{ErrorKind, ValidateError};
use super::expected::{ResourceRelation, ValidationString};
use super::locate::{LineMap, Position, RawText};

/// Where the schema text came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaOrigin {
    /// The `schema:` block of the file.
    Inline,
    /// The `schemaFile:` at this path (resolved against the file's directory).
    File(PathBuf),
}

/// The schema text of a validation file and how to locate its lines.
#[derive(Debug, Clone)]
pub struct SchemaSource {
    /// The schema text.
    pub text: String,
    /// Where it came from.
    pub origin: SchemaOrigin,
    map: LineMap,
}

impl SchemaSource {
    /// The file name and position in that file of a span in the schema text.
    pub fn locate(&self, file_name: &str, span: Span) -> (String, Option<Position>) {
        let line = usize::try_from(span.line).unwrap_or(usize::MAX);
        let column = usize::try_from(span.column).unwrap_or(usize::MAX);
        match &self.origin {
            SchemaOrigin::Inline => {
                let pos = if line == 0 {
                    self.map.start()
                } else {
                    self.map.position(line, column.max(1))
                };
                (file_name.to_string(), pos)
            }
            SchemaOrigin::File(path) => {
                let pos = (line > 0).then(|| Position::new(line, column.max(1)));
                (path.display().to_string(), pos)
            }
        }
    }
}

/// One relationship line of the file.
#[derive(Debug, Clone)]
pub struct FileRelationship {
    /// The parsed relationship.
    pub relationship: Relationship,
    /// The line as written (trimmed).
    pub text: String,
    /// Where the line starts in the file.
    pub position: Position,
}

/// What an assertion expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssertionKind {
    /// `assertTrue`: the permission is held.
    True,
    /// `assertFalse`: the permission is not held.
    False,
    /// `assertCaveated`: the permission depends on caveat context that was not given.
    Caveated,
}

impl AssertionKind {
    /// The YAML key.
    pub fn key(self) -> &'static str {
        match self {
            AssertionKind::True => "assertTrue",
            AssertionKind::False => "assertFalse",
            AssertionKind::Caveated => "assertCaveated",
        }
    }
}

/// One assertion.
#[derive(Debug, Clone)]
pub struct Assertion {
    /// Which list it is in.
    pub kind: AssertionKind,
    /// The text as written.
    pub text: String,
    /// The checked triple (a caveat or expiration on it is reported when run, as SpiceDB does).
    pub relationship: Relationship,
    /// The caveat context after ` with `, if any.
    pub context: Option<ContextMap>,
    /// Where the item is in the file.
    pub position: Position,
}

/// One expected-subject string of a `validation:` entry.
#[derive(Debug, Clone)]
pub struct ExpectedLine {
    /// The string as written.
    pub text: String,
    /// Its parsed form.
    pub parsed: ValidationString,
    /// Where it is in the file.
    pub position: Position,
}

/// One `validation:` entry: a resource and permission, and every subject expected to have it.
#[derive(Debug, Clone)]
pub struct ExpectedEntry {
    /// The key as written.
    pub key: String,
    /// The parsed key.
    pub target: ResourceRelation,
    /// Where the key is in the file.
    pub position: Position,
    /// The expected subjects.
    pub subjects: Vec<ExpectedLine>,
}

/// A parsed validation file.
#[derive(Debug, Clone)]
pub struct ValidationFile {
    /// How the file is named in messages.
    pub name: String,
    /// The schema.
    pub schema: SchemaSource,
    /// The relationships, in file order.
    pub relationships: Vec<FileRelationship>,
    /// The assertions: every `assertTrue`, then `assertCaveated`, then `assertFalse`.
    pub assertions: Vec<Assertion>,
    /// The `validation:` entries, in file order.
    pub validation: Vec<ExpectedEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(
    expecting = "a map with `schema` or `schemaFile`, `relationships`, `assertions` and `validation`"
)]
struct RawFile {
    #[serde(default)]
    schema: Option<String>,
    #[serde(default, rename = "schemaFile")]
    schema_file: Option<String>,
    #[serde(default)]
    relationships: Option<String>,
    #[serde(default)]
    assertions: Option<serde_yaml::Value>,
    #[serde(default)]
    validation: Option<serde_yaml::Value>,
    #[serde(default)]
    namespace_configs: Option<serde_yaml::Value>,
    #[serde(default)]
    validation_tuples: Option<serde_yaml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a map with `assertTrue`, `assertFalse` and `assertCaveated` lists"
)]
struct RawAssertions {
    #[serde(default, rename = "assertTrue")]
    assert_true: Option<Vec<String>>,
    #[serde(default, rename = "assertCaveated")]
    assert_caveated: Option<Vec<String>>,
    #[serde(default, rename = "assertFalse")]
    assert_false: Option<Vec<String>>,
}

/// The message of a `serde_yaml` error without its trailing ` at line N column M`.
fn yaml_message(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) if e.location().is_some() => text.get(..i).unwrap_or(&text).to_string(),
        _ => text,
    }
}

fn yaml_position(e: &serde_yaml::Error) -> Option<Position> {
    e.location().map(|l| Position::new(l.line(), l.column()))
}

/// The file's parsing state: its name and raw text.
struct Ctx<'a> {
    name: &'a str,
    raw: RawText<'a>,
}

impl Ctx<'_> {
    fn err(&self, position: Option<Position>, kind: ErrorKind) -> ValidateError {
        ValidateError::new(self.name, position, kind)
    }
}

impl ValidationFile {
    /// Reads and parses the file at `path`; a `schemaFile` is resolved against its directory.
    pub fn load(path: &Path) -> Result<Self, ValidateError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ValidateError::new(&name, None, ErrorKind::Read(e.to_string())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&name, &text, base)
    }

    /// Parses file text named `name`; a `schemaFile` is resolved against `base_dir`.
    pub fn parse(name: &str, text: &str, base_dir: &Path) -> Result<Self, ValidateError> {
        let cx = Ctx {
            name,
            raw: RawText::new(text),
        };
        let raw: RawFile = if text.trim().is_empty() {
            return Err(cx.err(None, ErrorKind::NoSchema));
        } else {
            // As SpiceDB (yaml.v3 `Unmarshal`), only the first document counts.
            let first = serde_yaml::Deserializer::from_str(text).next();
            match first {
                Some(document) => RawFile::deserialize(document)
                    .map_err(|e| cx.err(yaml_position(&e), ErrorKind::Yaml(yaml_message(&e))))?,
                None => return Err(cx.err(None, ErrorKind::NoSchema)),
            }
        };

        if raw.namespace_configs.is_some() {
            return Err(cx.err(
                cx.raw.key_position("namespace_configs"),
                ErrorKind::Legacy {
                    block: "namespace_configs",
                    hint: "give definitions in `schema`",
                },
            ));
        }
        if raw.validation_tuples.is_some() {
            return Err(cx.err(
                cx.raw.key_position("validation_tuples"),
                ErrorKind::Legacy {
                    block: "validation_tuples",
                    hint: "give relationships in `relationships`",
                },
            ));
        }

        let schema = Self::schema_source(&cx, &raw, base_dir)?;
        let relationships = Self::relationships(&cx, raw.relationships.as_deref().unwrap_or(""))?;
        let assertions = Self::assertions(&cx, raw.assertions.as_ref())?;
        let validation = Self::validation(&cx, raw.validation.as_ref())?;
        Ok(ValidationFile {
            name: name.to_string(),
            schema,
            relationships,
            assertions,
            validation,
        })
    }

    fn schema_source(
        cx: &Ctx<'_>,
        raw: &RawFile,
        base_dir: &Path,
    ) -> Result<SchemaSource, ValidateError> {
        let inline = raw.schema.as_deref().filter(|s| !s.is_empty());
        let file = raw.schema_file.as_deref().filter(|s| !s.is_empty());
        match (inline, file) {
            (Some(_), Some(_)) => {
                Err(cx.err(cx.raw.key_position("schemaFile"), ErrorKind::BothSchemas))
            }
            (None, None) => Err(cx.err(None, ErrorKind::NoSchema)),
            (Some(text), None) => Ok(SchemaSource {
                text: text.to_string(),
                origin: SchemaOrigin::Inline,
                map: cx.raw.map_scalar("schema", text),
            }),
            (None, Some(rel_path)) => {
                let at = cx.raw.key_position("schemaFile");
                let schema_err = |message: String| {
                    cx.err(
                        at,
                        ErrorKind::SchemaFile {
                            path: rel_path.to_string(),
                            message,
                        },
                    )
                };
                if !is_local(Path::new(rel_path)) {
                    return Err(schema_err(
                        "the path must be relative and stay inside the validation file's directory"
                            .to_string(),
                    ));
                }
                let path = base_dir.join(
                    Path::new(rel_path)
                        .components()
                        .filter(|c| *c != Component::CurDir)
                        .collect::<PathBuf>(),
                );
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| schema_err(format!("cannot read it: {e}")))?;
                Ok(SchemaSource {
                    text,
                    origin: SchemaOrigin::File(path),
                    map: LineMap::default(),
                })
            }
        }
    }

    fn relationships(cx: &Ctx<'_>, text: &str) -> Result<Vec<FileRelationship>, ValidateError> {
        let map = cx.raw.map_scalar("relationships", text);
        let mut out: Vec<FileRelationship> = Vec::new();
        let mut seen = std::collections::HashMap::new();
        for (index, line) in text.split('\n').enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with("//") {
                continue;
            }
            let lead = line.chars().count() - line.trim_start().chars().count();
            let start = map.position(index + 1, lead + 1);
            let relationship = Relationship::parse(line).map_err(|e| {
                cx.err(
                    map.position(index + 1, e.column).or(start),
                    ErrorKind::Relationship {
                        text: trimmed.to_string(),
                        message: e.message.clone(),
                    },
                )
            })?;
            let position = start.unwrap_or(Position::new(1, 1));
            let (resource, relation, subject) = relationship.key();
            let key = (resource.clone(), relation.to_string(), subject.clone());
            if let Some(first) = seen.get(&key) {
                let first: &Position = first;
                return Err(cx.err(
                    start,
                    ErrorKind::Repeated {
                        text: trimmed.to_string(),
                        first_line: first.line,
                    },
                ));
            }
            seen.insert(key, position);
            out.push(FileRelationship {
                relationship,
                text: trimmed.to_string(),
                position,
            });
        }
        Ok(out)
    }

    /// Turns a YAML value that may be a string holding YAML into the value it holds.
    fn unwrap_string_form(
        cx: &Ctx<'_>,
        value: &serde_yaml::Value,
        key: &str,
    ) -> Result<serde_yaml::Value, ValidateError> {
        match value {
            serde_yaml::Value::String(s) => serde_yaml::from_str(s).map_err(|e| {
                cx.err(
                    cx.raw.key_position(key),
                    ErrorKind::Yaml(format!("in the `{key}` string: {}", yaml_message(&e))),
                )
            }),
            other => Ok(other.clone()),
        }
    }

    fn assertions(
        cx: &Ctx<'_>,
        value: Option<&serde_yaml::Value>,
    ) -> Result<Vec<Assertion>, ValidateError> {
        let Some(value) = value else {
            return Ok(Vec::new());
        };
        let at = cx.raw.key_position("assertions");
        let value = Self::unwrap_string_form(cx, value, "assertions")?;
        let parsed: RawAssertions = match value {
            serde_yaml::Value::Null => RawAssertions::default(),
            serde_yaml::Value::Mapping(_) => serde_yaml::from_value(value).map_err(|e| {
                cx.err(
                    at,
                    ErrorKind::Structure(format!(
                        "`assertions` must map `assertTrue`, `assertFalse` and `assertCaveated` to lists of strings: {}",
                        yaml_message(&e)
                    )),
                )
            })?,
            _ => {
                return Err(cx.err(
                    at,
                    ErrorKind::Structure(
                        "`assertions` must be a map with `assertTrue`, `assertFalse` and `assertCaveated` lists"
                            .to_string(),
                    ),
                ));
            }
        };
        let (start, end) = cx.raw.block("assertions").unwrap_or((0, cx.raw.len()));
        let mut out = Vec::new();
        for (kind, items) in [
            (AssertionKind::True, parsed.assert_true),
            (AssertionKind::Caveated, parsed.assert_caveated),
            (AssertionKind::False, parsed.assert_false),
        ] {
            let items = items.unwrap_or_default();
            let key = cx.raw.find_key(kind.key(), start, end);
            let mut cursor = key.map_or(start, |(line, _)| line);
            let fallback = key.map(|(_, p)| p).or(at);
            for item in items {
                let found = cx.raw.find_item(&item, cursor, end);
                if let Some((line, _, _)) = found {
                    cursor = line + 1;
                }
                let (node, content) =
                    found.map_or((fallback, fallback), |(_, n, c)| (Some(n), Some(c)));
                out.push(Self::assertion(cx, kind, &item, node, content)?);
            }
        }
        Ok(out)
    }

    fn assertion(
        cx: &Ctx<'_>,
        kind: AssertionKind,
        item: &str,
        node: Option<Position>,
        content: Option<Position>,
    ) -> Result<Assertion, ValidateError> {
        let trimmed = item.trim();
        let (rel_text, context_text) = match trimmed.split_once(" with ") {
            Some((r, c)) => (r, Some(c)),
            None => (trimmed, None),
        };
        let lead = rel_text.chars().count() - rel_text.trim_start().chars().count();
        let relationship = Relationship::parse(rel_text.trim()).map_err(|e| {
            cx.err(
                content.map(|c| c.shifted((lead + e.column).saturating_sub(1))),
                ErrorKind::Assertion {
                    text: trimmed.to_string(),
                    message: e.message.clone(),
                },
            )
        })?;
        let context = match context_text {
            None => None,
            Some(json) => {
                let offset = rel_text.chars().count() + " with ".len();
                Some(ContextValue::parse_object(json).map_err(|message| {
                    cx.err(
                        content.map(|c| c.shifted(offset)),
                        ErrorKind::Assertion {
                            text: trimmed.to_string(),
                            message,
                        },
                    )
                })?)
            }
        };
        Ok(Assertion {
            kind,
            text: trimmed.to_string(),
            relationship,
            context,
            position: node.unwrap_or(Position::new(1, 1)),
        })
    }

    fn validation(
        cx: &Ctx<'_>,
        value: Option<&serde_yaml::Value>,
    ) -> Result<Vec<ExpectedEntry>, ValidateError> {
        let Some(value) = value else {
            return Ok(Vec::new());
        };
        let at = cx.raw.key_position("validation");
        let structure = |message: &str| cx.err(at, ErrorKind::Structure(message.to_string()));
        let value = Self::unwrap_string_form(cx, value, "validation")?;
        let mapping = match value {
            serde_yaml::Value::Null => return Ok(Vec::new()),
            serde_yaml::Value::Mapping(m) => m,
            _ => {
                return Err(structure(
                    "`validation` must map `resource#permission` keys to lists of expected subjects",
                ));
            }
        };
        let (start, end) = cx.raw.block("validation").unwrap_or((0, cx.raw.len()));
        let mut cursor = start;
        let mut seen_keys = BTreeSet::new();
        let mut out = Vec::new();
        for (key, items) in mapping {
            let serde_yaml::Value::String(key) = key else {
                return Err(structure(
                    "every `validation` key must be a `resource#permission` string",
                ));
            };
            let key_found = cx.raw.find_key(&key, cursor, end);
            if let Some((line, _)) = key_found {
                cursor = line + 1;
            }
            let key_pos = key_found.map(|(_, p)| p).or(at);
            let target = ResourceRelation::parse(&key).map_err(|message| {
                cx.err(
                    key_pos,
                    ErrorKind::Validation {
                        text: key.clone(),
                        message,
                    },
                )
            })?;
            if !seen_keys.insert(key.clone()) {
                return Err(cx.err(
                    key_pos,
                    ErrorKind::Validation {
                        text: key.clone(),
                        message: "the key appears twice".to_string(),
                    },
                ));
            }
            let items: Vec<serde_yaml::Value> = match items {
                serde_yaml::Value::Null => Vec::new(),
                serde_yaml::Value::Sequence(items) => items,
                _ => {
                    return Err(cx.err(
                        key_pos,
                        ErrorKind::Validation {
                            text: key.clone(),
                            message: "the value must be a list of expected-subject strings"
                                .to_string(),
                        },
                    ));
                }
            };
            let mut subjects = Vec::new();
            for item in items {
                let serde_yaml::Value::String(text) = item else {
                    return Err(cx.err(
                        key_pos,
                        ErrorKind::Validation {
                            text: key.clone(),
                            message: "every expected subject must be a string like `[user:tom] is <document:x#viewer>`"
                                .to_string(),
                        },
                    ));
                };
                let found = cx.raw.find_item(&text, cursor, end);
                if let Some((line, _, _)) = found {
                    cursor = line + 1;
                }
                let (node, content) =
                    found.map_or((key_pos, key_pos), |(_, n, c)| (Some(n), Some(c)));
                let lead = text.chars().count() - text.trim_start().chars().count();
                let parsed = ValidationString::parse(&text).map_err(|e| {
                    cx.err(
                        content.map(|c| c.shifted(e.offset.saturating_sub(lead))),
                        ErrorKind::Validation {
                            text: text.clone(),
                            message: e.message.clone(),
                        },
                    )
                })?;
                subjects.push(ExpectedLine {
                    text,
                    parsed,
                    position: node.unwrap_or(Position::new(1, 1)),
                });
            }
            out.push(ExpectedEntry {
                key,
                target,
                position: key_pos.unwrap_or(Position::new(1, 1)),
                subjects,
            });
        }
        Ok(out)
    }
}

/// Whether a relative path stays inside its base directory (as Go's `filepath.IsLocal`).
fn is_local(path: &Path) -> bool {
    let mut depth: usize = 0;
    for component in path.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    depth > 0
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]
    use super::*;

    fn parse(text: &str) -> Result<ValidationFile, ValidateError> {
        ValidationFile::parse("t.yaml", text, Path::new("."))
    }

    #[test]
    fn parses_all_blocks() {
        let text = r#"---
schema: |-
  definition user {}
  definition document {
    relation viewer: user
    permission view = viewer
  }
relationships: |-
  // a comment
  document:firstdoc#viewer@user:tom

  document:firstdoc#viewer@user:fred
assertions:
  assertTrue:
    - document:firstdoc#view@user:tom
    - 'document:firstdoc#view@user:fred with {"a": 1}'
  assertFalse:
    - "document:firstdoc#view@user:sarah"
validation:
  document:firstdoc#view:
    - "[user:fred] is <document:firstdoc#viewer>"
    - "[user:tom] is <document:firstdoc#viewer>"
  document:seconddoc#view: []
"#;
        let f = parse(text).unwrap();
        assert_eq!(f.relationships.len(), 2);
        assert_eq!(f.relationships[0].position, Position::new(10, 3));
        assert_eq!(f.relationships[1].position, Position::new(12, 3));
        assert_eq!(f.assertions.len(), 3);
        assert_eq!(f.assertions[0].position, Position::new(15, 7));
        assert_eq!(f.assertions[1].position, Position::new(16, 7));
        assert!(f.assertions[1].context.is_some());
        assert_eq!(f.assertions[2].kind, AssertionKind::False);
        assert_eq!(f.assertions[2].position, Position::new(18, 7));
        assert_eq!(f.validation.len(), 2);
        assert_eq!(f.validation[0].position, Position::new(20, 3));
        assert_eq!(f.validation[0].subjects[1].position, Position::new(22, 7));
        assert_eq!(f.validation[1].position, Position::new(23, 3));
        let (_, pos) = f.schema.locate("t.yaml", Span { line: 3, column: 5 });
        assert_eq!(pos, Some(Position::new(5, 7)));
    }

    #[test]
    fn string_forms_and_nulls() {
        let text = "schema: >-\n  definition user {}\nrelationships: \"\"\nassertions: |\n  assertTrue:\n    - user:abc#xyz@user:bcd\nvalidation: null\n";
        let f = parse(text).unwrap();
        assert_eq!(f.assertions.len(), 1);
        assert_eq!(f.assertions[0].position, Position::new(6, 7));
        assert!(f.validation.is_empty());
    }

    #[test]
    fn errors_point_into_the_file() {
        let base = "schema: |-\n  definition user {}\nrelationships: |-\n  document:a#viewer@user:tom\n  document:a#viewer@user:t m\n";
        let e = parse(base).unwrap_err();
        assert_eq!(e.position, Some(Position::new(5, 26)), "{e}");

        let dup = "schema: |-\n  definition user {}\nrelationships: >-\n  document:a#viewer@user:tom[cav]\n\n  document:a#viewer@user:tom\n";
        let e = parse(dup).unwrap_err();
        assert_eq!(e.position, Some(Position::new(6, 3)));
        assert!(e.to_string().contains("line 4"), "{e}");

        let yaml = "schema: |-\n  definition user {}\nassertions:\n  assertTrue: [\n";
        let e = parse(yaml).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Yaml(_)));
        assert!(e.position.is_some());

        let bad_assert = "schema: x\nassertions:\n  assertTrue:\n    - \"document:a#view@user\"\n";
        let e = parse(bad_assert).unwrap_err();
        assert_eq!(e.position, Some(Position::new(4, 28)), "{e}");

        let typo = "schema: x\nassertions:\n  assertTure: []\n";
        assert!(parse(typo).is_err());

        let bad_expected = "schema: x\nvalidation:\n  document:a#view:\n    - \"[user:tom[x]] is <document:a#viewer>\"\n";
        let e = parse(bad_expected).unwrap_err();
        assert_eq!(e.position.map(|p| p.line), Some(4));

        assert!(matches!(
            parse("relationships: \"\"\n").unwrap_err().kind,
            ErrorKind::NoSchema
        ));
        assert!(matches!(parse("").unwrap_err().kind, ErrorKind::NoSchema));
        let both = "schema: x\nschemaFile: y.zed\n";
        assert!(matches!(
            parse(both).unwrap_err().kind,
            ErrorKind::BothSchemas
        ));
        let outside = "schemaFile: ../y.zed\n";
        assert!(matches!(
            parse(outside).unwrap_err().kind,
            ErrorKind::SchemaFile { .. }
        ));
    }

    #[test]
    fn never_panics_on_truncated_or_mangled_input() {
        let text = "---\nschema: |-\n  definition user {}\n  caveat cav(a int) { a == 1 }\nrelationships: >-\n  doc:a#viewer@user:tom[cav:{\"a\": 1}]\n\n  doc:a#viewer@user:*\nassertions:\n  assertTrue:\n    - 'doc:a#view@user:tom with {\"a\": 1}'\n  assertCaveated: [\"doc:a#view@user:fred\"]\nvalidation:\n  doc:a#view:\n    - \"[user:* - {user:x[...]}] is <doc:a#viewer>\"\n    - \"[user:tom[...]] is <doc:a#viewer>/<doc:b#x>\"\n";
        for (i, _) in text.char_indices() {
            let _ = parse(&text[..i]);
            let mut mangled = text.to_string();
            mangled.insert(i, '\'');
            let _ = parse(&mangled);
            let mut mangled = text.to_string();
            mangled.insert_str(i, "[]<>#:");
            let _ = parse(&mangled);
        }
    }

    #[test]
    fn local_paths() {
        assert!(is_local(Path::new("./a.zed")));
        assert!(is_local(Path::new("sub/../a.zed")));
        assert!(!is_local(Path::new("../a.zed")));
        assert!(!is_local(Path::new("/etc/passwd")));
        assert!(!is_local(Path::new(".")));
    }
}
