//! `Relationship`: `resource#relation@subject` with an optional caveat and expiration,
//! and its text form `type:id#relation@type:id[#relation][[caveat:{json}]][[expiration:RFC3339]]`.

use std::fmt;
use std::str::FromStr;

use super::context::{ContextMap, ContextValue, context_to_json_string};
use super::names::{NameError, validate_caveat_name, validate_relation_name};
use super::refs::{ObjectRef, SubjectRef};
use super::timestamp::Timestamp;

/// A caveat named on a relationship, with the part of its context bound there.
#[derive(Debug, Clone, PartialEq)]
pub struct CaveatRef {
    name: String,
    context: ContextMap,
}

impl CaveatRef {
    /// Validates the caveat name.
    pub fn new(name: &str, context: ContextMap) -> Result<Self, NameError> {
        validate_caveat_name(name)?;
        Ok(CaveatRef {
            name: name.to_string(),
            context,
        })
    }

    /// The caveat's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The context bound on the relationship.
    pub fn context(&self) -> &ContextMap {
        &self.context
    }
}

/// One relationship tuple.
#[derive(Debug, Clone, PartialEq)]
pub struct Relationship {
    resource: ObjectRef,
    relation: String,
    subject: SubjectRef,
    caveat: Option<CaveatRef>,
    expiration: Option<Timestamp>,
}

/// Why a relationship string could not be parsed; `column` is 1-based within the string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseRelationshipError {
    /// 1-based column (in characters) where the problem starts.
    pub column: usize,
    /// What is wrong, for a person.
    pub message: String,
}

impl Relationship {
    /// Builds a relationship; the relation name is validated.
    pub fn new(
        resource: ObjectRef,
        relation: &str,
        subject: SubjectRef,
        caveat: Option<CaveatRef>,
        expiration: Option<Timestamp>,
    ) -> Result<Self, NameError> {
        validate_relation_name(relation)?;
        Ok(Relationship {
            resource,
            relation: relation.to_string(),
            subject,
            caveat,
            expiration,
        })
    }

    /// The resource object.
    pub fn resource(&self) -> &ObjectRef {
        &self.resource
    }

    /// The relation on the resource.
    pub fn relation(&self) -> &str {
        &self.relation
    }

    /// The subject.
    pub fn subject(&self) -> &SubjectRef {
        &self.subject
    }

    /// The caveat, if the relationship is conditional.
    pub fn caveat(&self) -> Option<&CaveatRef> {
        self.caveat.as_ref()
    }

    /// When the relationship stops existing, if ever.
    pub fn expiration(&self) -> Option<Timestamp> {
        self.expiration
    }

    /// Whether it has expired at `now`.
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }

    /// The identity of the tuple: resource, relation and subject (caveat and expiration excluded).
    pub fn key(&self) -> (&ObjectRef, &str, &SubjectRef) {
        (&self.resource, &self.relation, &self.subject)
    }

    /// Parses the text form.
    pub fn parse(input: &str) -> Result<Self, ParseRelationshipError> {
        Parser::new(input).relationship()
    }
}

impl FromStr for Relationship {
    type Err = ParseRelationshipError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Relationship::parse(s)
    }
}

impl fmt::Display for Relationship {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.resource, self.relation, self.subject)?;
        if let Some(c) = &self.caveat {
            if c.context.is_empty() {
                write!(f, "[{}]", c.name)?;
            } else {
                write!(f, "[{}:{}]", c.name, context_to_json_string(&c.context))?;
            }
        }
        if let Some(e) = self.expiration {
            write!(f, "[expiration:{e}]")?;
        }
        Ok(())
    }
}

/// A cursor over the relationship text that reports columns.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        let trimmed_start = input.len() - input.trim_start().len();
        Parser {
            text: input.trim_end(),
            pos: trimmed_start,
        }
    }

    fn column(&self, byte: usize) -> usize {
        self.text.get(..byte).map_or(byte, |s| s.chars().count()) + 1
    }

    fn err(&self, byte: usize, message: impl Into<String>) -> ParseRelationshipError {
        ParseRelationshipError {
            column: self.column(byte),
            message: message.into(),
        }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    /// Takes characters up to (not including) the first of `stops`, or to the end.
    fn take_until(&mut self, stops: &[char]) -> (usize, &'a str) {
        let start = self.pos;
        let rest = self.rest();
        let len = rest.find(stops).unwrap_or(rest.len());
        self.pos += len;
        (start, rest.get(..len).unwrap_or(""))
    }

    fn expect(&mut self, c: char, what: &str) -> Result<(), ParseRelationshipError> {
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            let found = self
                .rest()
                .chars()
                .next()
                .map_or("the end".to_string(), |f| format!("`{f}`"));
            Err(self.err(self.pos, format!("expected `{c}` {what}, found {found}")))
        }
    }

    fn name_err(&self, at: usize, e: NameError) -> ParseRelationshipError {
        self.err(at, e.to_string())
    }

    fn relationship(mut self) -> Result<Relationship, ParseRelationshipError> {
        if self.rest().is_empty() {
            return Err(self.err(
                self.pos,
                "empty relationship; expected `type:id#relation@type:id`",
            ));
        }
        let (type_at, rtype) = self.take_until(&[':', '#', '@', '[']);
        self.expect(':', "after the resource type")?;
        let (id_at, rid) = self.take_until(&['#', '@', '[']);
        self.expect('#', "before the resource relation")?;
        let (rel_at, relation) = self.take_until(&['@', '[', '#']);
        self.expect('@', "between the resource relation and the subject")?;
        let (stype_at, stype) = self.take_until(&[':', '#', '@', '[']);
        self.expect(':', "after the subject type")?;
        let (sid_at, sid) = self.take_until(&['#', '[', '@']);
        let mut srel: Option<(usize, &str)> = None;
        if self.rest().starts_with('#') {
            self.pos += 1;
            let (at, r) = self.take_until(&['[', '@', '#']);
            srel = Some((at, r));
        }

        let resource = ObjectRef::new(rtype, rid).map_err(|e| {
            let at = if e.kind == "object type" {
                type_at
            } else {
                id_at
            };
            self.name_err(at, e)
        })?;
        validate_relation_name(relation).map_err(|e| self.name_err(rel_at, e))?;
        let subject = SubjectRef::new(stype, sid, srel.map(|(_, r)| r)).map_err(|e| {
            let at = match e.kind {
                "object type" => stype_at,
                "relation" | "subject" => srel.map_or(sid_at, |(at, _)| at),
                _ => sid_at,
            };
            self.name_err(at, e)
        })?;

        let mut caveat = None;
        let mut expiration = None;
        while self.rest().starts_with('[') {
            let open = self.pos;
            self.pos += 1;
            let (name_at, name) = self.take_until(&[':', ']']);
            if name == "expiration" && self.rest().starts_with(':') {
                if expiration.is_some() {
                    return Err(self.err(open, "expiration given twice"));
                }
                self.pos += 1;
                let (ts_at, ts) = self.take_until(&[']']);
                let t = Timestamp::parse_rfc3339(ts).map_err(|e| self.err(ts_at, e.to_string()))?;
                expiration = Some(t);
                self.expect(']', "after the expiration")?;
                continue;
            }
            if caveat.is_some() || expiration.is_some() {
                return Err(self.err(open, "a caveat must come once, before any expiration"));
            }
            let mut context = ContextMap::new();
            if self.rest().starts_with(':') {
                self.pos += 1;
                let json_at = self.pos;
                let mut stream = serde_json::Deserializer::from_str(self.rest())
                    .into_iter::<serde_json::Value>();
                match stream.next() {
                    Some(Ok(serde_json::Value::Object(map))) => {
                        self.pos += stream.byte_offset();
                        for (k, v) in &map {
                            context.insert(k.clone(), ContextValue::from_json(v));
                        }
                    }
                    Some(Ok(_)) => {
                        return Err(self.err(json_at, "caveat context must be a JSON object"));
                    }
                    Some(Err(e)) => {
                        return Err(self.err(json_at, format!("invalid caveat context JSON: {e}")));
                    }
                    None => return Err(self.err(json_at, "expected a JSON object after `:`")),
                }
            }
            let c = CaveatRef::new(name, context).map_err(|e| self.name_err(name_at, e))?;
            self.expect(']', "to close the caveat")?;
            caveat = Some(c);
        }
        if !self.rest().is_empty() {
            return Err(self.err(
                self.pos,
                format!("unexpected `{}` after the relationship", self.rest()),
            ));
        }
        Ok(Relationship {
            resource,
            relation: relation.to_string(),
            subject,
            caveat,
            expiration,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_userset_and_wildcard() {
        let r = Relationship::parse("document:q3#viewer@team:eng#member").unwrap();
        assert_eq!(r.resource().to_string(), "document:q3");
        assert_eq!(r.subject().relation(), Some("member"));
        let r = Relationship::parse("document:q3#viewer@user:*").unwrap();
        assert!(r.subject().is_wildcard());
        let r = Relationship::parse("folder:company#owner@user:owner#...").unwrap();
        assert_eq!(r.subject().relation(), None);
        assert_eq!(r.to_string(), "folder:company#owner@user:owner");
    }

    #[test]
    fn parses_caveat_and_expiration() {
        let r = Relationship::parse(
            r#"resource:first#reader@user:sarah[some_caveat:{"somecondition": 42, "x": "a]b"}]"#,
        )
        .unwrap();
        let c = r.caveat().unwrap();
        assert_eq!(c.name(), "some_caveat");
        assert_eq!(
            c.context().get("somecondition"),
            Some(&ContextValue::Int(42))
        );
        let r =
            Relationship::parse("folder:expired#viewer@user:tom[expiration:2023-12-01T00:00:00Z]")
                .unwrap();
        assert_eq!(r.expiration().unwrap().to_rfc3339(), "2023-12-01T00:00:00Z");
        let r = Relationship::parse("a_b:x#rel@user:tom[cav][expiration:2023-12-01T00:00:00Z]")
            .unwrap();
        assert!(r.caveat().is_some() && r.expiration().is_some());
        let text = r.to_string();
        assert_eq!(Relationship::parse(&text).unwrap(), r);
    }

    #[test]
    fn errors_have_columns() {
        let e = Relationship::parse("document:q3#viewer").unwrap_err();
        assert_eq!(e.column, 19);
        let e = Relationship::parse("document:q 3#viewer@user:x").unwrap_err();
        assert_eq!(e.column, 10);
        let e = Relationship::parse("document:q3#viewer@user:*#member").unwrap_err();
        assert!(e.message.contains("wildcard"));
        assert!(Relationship::parse("document:q3#viewer@user:x[cav:{]").is_err());
        assert!(Relationship::parse("document:q3#viewer@user:x[expiration:nope]").is_err());
        assert!(Relationship::parse("document:q3#viewer@user:x trailing").is_err());
        assert!(Relationship::parse("").is_err());
    }
}
