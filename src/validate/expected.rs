//! Expected-subject strings of a `validation:` block, in SpiceDB's grammar:
//! `[type:id[#relation][[...]][ - {excluded[[...]], ...}]] is <type:id#relation>/<...>`.
//!
//! The grammar is that of SpiceDB's `pkg/validationfile/blocks/expectedrelations.go`: the
//! subject is the text between the first `[` and the last `]`; a caveat is only ever marked
//! `[...]` (never by name); exclusions are allowed after a wildcard; there is no expiration
//! marker. The resources are every `<...>` in the string.

use std::fmt;

use crate::model::{ObjectRef, SubjectRef, validate_relation_name};

/// `type:id#relation`: a resource and one of its relations or permissions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceRelation {
    /// The resource.
    pub resource: ObjectRef,
    /// The relation or permission.
    pub relation: String,
}

impl ResourceRelation {
    /// Parses `type:id#relation`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (object, relation) = text
            .split_once('#')
            .ok_or_else(|| format!("`{text}` is not `type:id#relation`"))?;
        let (object_type, object_id) = object
            .split_once(':')
            .ok_or_else(|| format!("`{text}` is not `type:id#relation`"))?;
        let resource = ObjectRef::new(object_type, object_id).map_err(|e| e.to_string())?;
        validate_relation_name(relation).map_err(|e| e.to_string())?;
        Ok(ResourceRelation {
            resource,
            relation: relation.to_string(),
        })
    }
}

impl fmt::Display for ResourceRelation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.resource, self.relation)
    }
}

/// A subject with its caveat marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedSubject {
    /// The subject.
    pub subject: SubjectRef,
    /// Whether it is marked `[...]` (conditional on a caveat).
    pub caveated: bool,
}

impl fmt::Display for MarkedSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.subject)?;
        if self.caveated {
            f.write_str("[...]")?;
        }
        Ok(())
    }
}

/// The subject part of a validation string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedSubject {
    /// The subject and its caveat marker.
    pub subject: MarkedSubject,
    /// For a wildcard: the subjects excluded from it.
    pub exclusions: Vec<MarkedSubject>,
}

/// One parsed validation string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationString {
    /// The subject, if the string has a `[...]` part.
    pub subject: Option<ExpectedSubject>,
    /// The resources (`<...>` parts) through which the subject is expected, as written.
    pub resources: Vec<ResourceRelation>,
}

/// Why a validation string does not parse; `offset` is a 0-based character offset in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedParseError {
    /// Where in the string the problem starts (characters).
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

fn char_offset(s: &str, byte: usize) -> usize {
    s.get(..byte).map_or(0, |p| p.chars().count())
}

/// Parses a subject as written in a validation string: `type:id`, `type:id#relation`,
/// `type:id#...` or `type:*`.
fn parse_subject(text: &str) -> Result<SubjectRef, String> {
    let (object_type, rest) = text.split_once(':').ok_or_else(|| {
        format!("invalid subject: `{text}` is not `type:id` or `type:id#relation`")
    })?;
    let (object_id, relation) = match rest.split_once('#') {
        Some((id, rel)) => (id, Some(rel)),
        None => (rest, None),
    };
    SubjectRef::new(object_type, object_id, relation)
        .map_err(|e| format!("invalid subject: `{text}`: {e}"))
}

/// Parses a subject with an optional `[...]` marker.
fn parse_marked(text: &str) -> Result<MarkedSubject, String> {
    let (body, caveated) = match text.strip_suffix("[...]") {
        Some(body) => (body, true),
        None => (text, false),
    };
    Ok(MarkedSubject {
        subject: parse_subject(body)?,
        caveated,
    })
}

impl ValidationString {
    /// Parses a validation string.
    pub fn parse(text: &str) -> Result<Self, ExpectedParseError> {
        let subject = Self::parse_subject_part(text)?;
        let resources = Self::parse_resources(text)?;
        Ok(ValidationString { subject, resources })
    }

    fn parse_subject_part(text: &str) -> Result<Option<ExpectedSubject>, ExpectedParseError> {
        let (Some(open), Some(close)) = (text.find('['), text.rfind(']')) else {
            return Ok(None);
        };
        let Some(inner) = text.get(open + 1..close).filter(|_| close > open) else {
            return Ok(None);
        };
        let offset = char_offset(text, open + 1);
        let err = |message: String| ExpectedParseError { offset, message };
        let inner = inner.trim();
        let invalid = || err(format!("invalid subject: `{inner}`"));

        // `head` is the subject with its optional `[...]`; exclusions follow ` - {...}`.
        let (head, exclusions_text) = match inner.strip_suffix('}') {
            Some(without_brace) => {
                let brace = without_brace.rfind('{').ok_or_else(invalid)?;
                let list = without_brace.get(brace + 1..).unwrap_or("");
                let before = without_brace.get(..brace).unwrap_or("").trim_end();
                let head = before.strip_suffix('-').ok_or_else(invalid)?;
                let had_space_before_dash = head.ends_with(char::is_whitespace);
                let had_space_after_dash = without_brace
                    .get(..brace)
                    .is_some_and(|b| b.ends_with(char::is_whitespace));
                if list.trim().is_empty() || !had_space_before_dash || !had_space_after_dash {
                    return Err(invalid());
                }
                (head.trim_end(), Some(list))
            }
            None => (inner, None),
        };
        let body = head.strip_suffix("[...]").unwrap_or(head);
        if body.is_empty() || body.contains(|c: char| c.is_whitespace() || c == ']') {
            return Err(invalid());
        }
        let subject = parse_marked(head).map_err(err)?;
        let mut exclusions = Vec::new();
        if let Some(list) = exclusions_text {
            for item in list.split(',') {
                exclusions.push(parse_marked(item.trim()).map_err(err)?);
            }
        }
        Ok(Some(ExpectedSubject {
            subject,
            exclusions,
        }))
    }

    fn parse_resources(text: &str) -> Result<Vec<ResourceRelation>, ExpectedParseError> {
        let mut resources = Vec::new();
        let mut from = 0;
        while let Some(rel_open) = text.get(from..).and_then(|t| t.find('<')) {
            let open = from + rel_open;
            let Some(rel_close) = text.get(open + 1..).and_then(|t| t.find('>')) else {
                break;
            };
            let close = open + 1 + rel_close;
            let inner = text.get(open + 1..close).unwrap_or("");
            if inner.is_empty() || inner.contains('<') {
                // `<>` or `<<`: the match starts at the next `<`.
                from = open + 1;
                continue;
            }
            let parsed = ResourceRelation::parse(inner).map_err(|e| ExpectedParseError {
                offset: char_offset(text, open + 1),
                message: format!("invalid resource and relation: `{inner}`: {e}"),
            })?;
            resources.push(parsed);
            from = close + 1;
        }
        Ok(resources)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn subject_text(v: &ValidationString) -> String {
        let s = v.subject.as_ref().unwrap();
        let mut out = s.subject.to_string();
        if !s.exclusions.is_empty() {
            let ex: Vec<String> = s.exclusions.iter().map(ToString::to_string).collect();
            out.push_str(&format!(" - {{{}}}", ex.join(", ")));
        }
        out
    }

    #[test]
    fn parses_spicedb_forms() {
        let v = ValidationString::parse(
            "[tenant/user:someuser#...] is <tenant/document:example#viewer>",
        )
        .unwrap();
        assert_eq!(subject_text(&v), "tenant/user:someuser");
        assert_eq!(v.resources.len(), 1);
        assert_eq!(v.resources[0].to_string(), "tenant/document:example#viewer");

        let v = ValidationString::parse("[tenant/user:someuser]").unwrap();
        assert!(v.resources.is_empty());

        let v = ValidationString::parse("is <tenant/document:example#viewer>").unwrap();
        assert!(v.subject.is_none());

        let v = ValidationString::parse(
            "[tenant/user:someuser[...] - {test/user:1[...],test/user:2}] is <tenant/document:example#viewer>/<tenant/document:example#builder>",
        )
        .unwrap();
        assert_eq!(
            subject_text(&v),
            "tenant/user:someuser[...] - {test/user:1[...], test/user:2}"
        );
        assert_eq!(v.resources.len(), 2);

        let v = ValidationString::parse(
            "[user:*[...] - {user:a, user:b}] is <document:seconddoc#reader>",
        )
        .unwrap();
        assert!(v.subject.as_ref().unwrap().subject.caveated);
        assert_eq!(v.subject.as_ref().unwrap().exclusions.len(), 2);

        let v =
            ValidationString::parse("[role:admin#member] is <project:pied_piper#comment_deleter>")
                .unwrap();
        assert_eq!(
            v.subject.unwrap().subject.subject.relation(),
            Some("member")
        );
    }

    #[test]
    fn rejects_what_spicedb_rejects() {
        for bad in [
            "[tenant/user:someuser:asdsad] is <tenant/document:example#viewer>",
            "[usertom] is <document:firstdoc#writer>",
            "[user:tom[df]] is <document:firstdoc#writer>",
            "[user:*-{}] is <document:firstdoc#writer>",
            "[user:tom] is <document:firstdocwriter>",
            "[user:tom] is <document:firstdoc#writer/document:firstdoc#reader>",
            "[tenant/user:someuser#... - {te1,test/user:2}] is <tenant/document:example#viewer>",
            "[user:tom[expiration:2023-12-01T00:00:00Z]] is <document:firstdoc#writer>",
        ] {
            assert!(ValidationString::parse(bad).is_err(), "{bad}");
        }
        // An unclosed subject bracket means "no subject", as in SpiceDB.
        let v = ValidationString::parse(
            "[tenant/user:someuser#... is <tenant/document:example#viewer>",
        )
        .unwrap();
        assert!(v.subject.is_none());
    }
}
