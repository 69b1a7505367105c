//! The one place where `authzed.api.v1` messages become model values and back. Every
//! malformed field is an `ApiError::InvalidField` naming the field and its value.

use prost_types::value::Kind;

use super::proto::authzed::api::v1 as pb;
use crate::api::status::{ApiError, Metadata};
use crate::eval::{ExpandNode, ExpandTree};
use crate::model::{
    CaveatRef, ContextMap, ContextValue, NameError, ObjectRef, Relationship, RelationshipFilter,
    SubjectFilter, SubjectRef, Timestamp, validate_object_id, validate_object_type,
    validate_relation_name, validate_subject_id,
};
use crate::schema::Schema;
use crate::store::{Precondition, PreconditionOp};

/// How deep a `google.protobuf.Struct` context may nest before it is refused (a guard
/// against stack exhaustion on hostile input; real caveat contexts nest a few levels).
const MAX_CONTEXT_DEPTH: usize = 32;

fn name_error(field: &str, e: NameError) -> ApiError {
    let part = match e.kind {
        "object type" => "object_type",
        "object id" | "subject id" => "object_id",
        "relation" | "subject" => "optional_relation",
        _ => "",
    };
    let field = if part.is_empty() {
        field.to_string()
    } else {
        format!("{field}.{part}")
    };
    ApiError::field(field, &e.value, e.rule)
}

fn required(field: &str) -> ApiError {
    ApiError::field(field, "", "the field is required")
}

/// A resource object (its id may not be `*`).
pub fn object_ref(
    field: &str,
    object: Option<&pb::ObjectReference>,
) -> Result<ObjectRef, ApiError> {
    let object = object.ok_or_else(|| required(field))?;
    ObjectRef::new(&object.object_type, &object.object_id).map_err(|e| name_error(field, e))
}

/// A subject: an object, a wildcard or a userset.
pub fn subject_ref(
    field: &str,
    subject: Option<&pb::SubjectReference>,
) -> Result<SubjectRef, ApiError> {
    let subject = subject.ok_or_else(|| required(field))?;
    let object = subject
        .object
        .as_ref()
        .ok_or_else(|| required(&format!("{field}.object")))?;
    let relation =
        (!subject.optional_relation.is_empty()).then_some(subject.optional_relation.as_str());
    SubjectRef::new(&object.object_type, &object.object_id, relation).map_err(|e| {
        let inner = if e.kind == "relation" || e.kind == "subject" {
            field.to_string()
        } else {
            format!("{field}.object")
        };
        name_error(&inner, e)
    })
}

/// A relation or permission name.
pub fn relation_name(field: &str, name: &str) -> Result<(), ApiError> {
    validate_relation_name(name).map_err(|e| ApiError::field(field, &e.value, e.rule))
}

/// An object type name.
pub fn object_type(field: &str, name: &str) -> Result<(), ApiError> {
    validate_object_type(name).map_err(|e| ApiError::field(field, &e.value, e.rule))
}

/// A request's caveat context.
pub fn context(field: &str, value: Option<&prost_types::Struct>) -> Result<ContextMap, ApiError> {
    match value {
        None => Ok(ContextMap::new()),
        Some(s) => struct_to_map(field, s, 0),
    }
}

fn struct_to_map(
    field: &str,
    s: &prost_types::Struct,
    depth: usize,
) -> Result<ContextMap, ApiError> {
    s.fields
        .iter()
        .map(|(k, v)| Ok((k.clone(), value_to_context(field, v, depth + 1)?)))
        .collect()
}

fn value_to_context(
    field: &str,
    value: &prost_types::Value,
    depth: usize,
) -> Result<ContextValue, ApiError> {
    if depth > MAX_CONTEXT_DEPTH {
        return Err(ApiError::field(
            field,
            "…",
            format!("the context nests more than {MAX_CONTEXT_DEPTH} levels"),
        ));
    }
    Ok(match &value.kind {
        None | Some(Kind::NullValue(_)) => ContextValue::Null,
        Some(Kind::BoolValue(b)) => ContextValue::Bool(*b),
        Some(Kind::NumberValue(n)) => number(*n),
        Some(Kind::StringValue(s)) => ContextValue::String(s.clone()),
        Some(Kind::ListValue(list)) => ContextValue::List(
            list.values
                .iter()
                .map(|v| value_to_context(field, v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Some(Kind::StructValue(s)) => ContextValue::Map(struct_to_map(field, s, depth)?),
    })
}

/// JSON numbers arrive as doubles; whole numbers that fit are kept as integers.
fn number(n: f64) -> ContextValue {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: every integer up to here is exact
    if n.fract() == 0.0 && n.abs() <= EXACT {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "checked to be a whole number within ±2^53"
        )]
        return ContextValue::Int(n as i64);
    }
    ContextValue::Double(n)
}

/// A context map as a `google.protobuf.Struct`.
pub fn map_to_struct(map: &ContextMap) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), context_to_value(v)))
            .collect(),
    }
}

fn context_to_value(v: &ContextValue) -> prost_types::Value {
    #[allow(
        clippy::cast_precision_loss,
        reason = "JSON numbers are doubles on the wire"
    )]
    let kind = match v {
        ContextValue::Null => Kind::NullValue(0),
        ContextValue::Bool(b) => Kind::BoolValue(*b),
        ContextValue::Int(i) => Kind::NumberValue(*i as f64),
        ContextValue::UInt(u) => Kind::NumberValue(*u as f64),
        ContextValue::Double(d) => Kind::NumberValue(*d),
        ContextValue::String(s) => Kind::StringValue(s.clone()),
        ContextValue::List(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(context_to_value).collect(),
        }),
        ContextValue::Map(m) => Kind::StructValue(map_to_struct(m)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A wire timestamp as a model one.
pub fn timestamp(field: &str, t: &prost_types::Timestamp) -> Result<Timestamp, ApiError> {
    let bad = || {
        ApiError::field(
            field,
            format!("{}s {}ns", t.seconds, t.nanos),
            "not a valid timestamp",
        )
    };
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(bad());
    }
    let micros = t
        .seconds
        .checked_mul(1_000_000)
        .and_then(|s| s.checked_add(i64::from(t.nanos / 1000)))
        .ok_or_else(bad)?;
    Ok(Timestamp::from_micros(micros))
}

/// A model timestamp on the wire.
pub fn timestamp_to_proto(t: Timestamp) -> prost_types::Timestamp {
    let micros = t.as_micros();
    let seconds = micros.div_euclid(1_000_000);
    let rem = micros.rem_euclid(1_000_000);
    prost_types::Timestamp {
        seconds,
        nanos: i32::try_from(rem * 1000).unwrap_or(0),
    }
}

/// A relationship from the wire, its names and ids validated (not yet against a schema).
pub fn relationship(field: &str, rel: Option<&pb::Relationship>) -> Result<Relationship, ApiError> {
    let rel = rel.ok_or_else(|| required(field))?;
    let resource = object_ref(&format!("{field}.resource"), rel.resource.as_ref())?;
    relation_name(&format!("{field}.relation"), &rel.relation)?;
    let subject = subject_ref(&format!("{field}.subject"), rel.subject.as_ref())?;
    let caveat = match &rel.optional_caveat {
        None => None,
        Some(c) if c.caveat_name.is_empty() && c.context.is_none() => None,
        Some(c) => {
            let ctx_field = format!("{field}.optional_caveat.context");
            let ctx = context(&ctx_field, c.context.as_ref())?;
            Some(CaveatRef::new(&c.caveat_name, ctx).map_err(|e| {
                ApiError::field(
                    format!("{field}.optional_caveat.caveat_name"),
                    &e.value,
                    e.rule,
                )
            })?)
        }
    };
    let expiration = rel
        .optional_expires_at
        .as_ref()
        .map(|t| timestamp(&format!("{field}.optional_expires_at"), t))
        .transpose()?;
    Relationship::new(resource, &rel.relation, subject, caveat, expiration)
        .map_err(|e| ApiError::field(format!("{field}.relation"), &e.value, e.rule))
}

/// An object on the wire.
pub fn object_to_proto(o: &ObjectRef) -> pb::ObjectReference {
    pb::ObjectReference {
        object_type: o.object_type().to_string(),
        object_id: o.object_id().to_string(),
    }
}

/// A subject on the wire.
pub fn subject_to_proto(s: &SubjectRef) -> pb::SubjectReference {
    pb::SubjectReference {
        object: Some(object_to_proto(s.object())),
        optional_relation: s.relation().unwrap_or_default().to_string(),
    }
}

/// A relationship on the wire.
pub fn relationship_to_proto(r: &Relationship) -> pb::Relationship {
    pb::Relationship {
        resource: Some(object_to_proto(r.resource())),
        relation: r.relation().to_string(),
        subject: Some(subject_to_proto(r.subject())),
        optional_caveat: r.caveat().map(|c| pb::ContextualizedCaveat {
            caveat_name: c.name().to_string(),
            context: (!c.context().is_empty()).then(|| map_to_struct(c.context())),
        }),
        optional_expires_at: r.expiration().map(timestamp_to_proto),
    }
}

/// A relationship as text without caveat or expiration (its identity), as SpiceDB prints it.
pub fn relationship_key_text(r: &Relationship) -> String {
    format!("{}#{}@{}", r.resource(), r.relation(), r.subject())
}

/// A relationship filter from the wire. At least one field must be set, and not both an id and
/// an id prefix.
pub fn filter(
    field: &str,
    f: Option<&pb::RelationshipFilter>,
) -> Result<RelationshipFilter, ApiError> {
    let f = f.ok_or_else(|| required(field))?;
    let text = filter_text(f);
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    if !f.resource_type.is_empty() {
        object_type(&format!("{field}.resource_type"), &f.resource_type)?;
    }
    if !f.optional_resource_id.is_empty() {
        validate_object_id(&f.optional_resource_id).map_err(|e| {
            ApiError::field(format!("{field}.optional_resource_id"), &e.value, e.rule)
        })?;
    }
    if !f.optional_resource_id_prefix.is_empty() {
        validate_object_id(&f.optional_resource_id_prefix).map_err(|e| {
            ApiError::field(
                format!("{field}.optional_resource_id_prefix"),
                &e.value,
                e.rule,
            )
        })?;
    }
    if !f.optional_relation.is_empty() {
        relation_name(&format!("{field}.optional_relation"), &f.optional_relation)?;
    }
    if !f.optional_resource_id.is_empty() && !f.optional_resource_id_prefix.is_empty() {
        return Err(ApiError::InvalidFilter {
            reason: "resource_id and resource_id_prefix cannot be set at the same time".to_string(),
            filter: text,
        });
    }
    let subject = f
        .optional_subject_filter
        .as_ref()
        .map(|s| subject_filter(&format!("{field}.optional_subject_filter"), s))
        .transpose()?;
    if f.resource_type.is_empty()
        && f.optional_resource_id.is_empty()
        && f.optional_resource_id_prefix.is_empty()
        && f.optional_relation.is_empty()
        && subject.is_none()
    {
        return Err(ApiError::InvalidFilter {
            reason: "at least one field must be set".to_string(),
            filter: text,
        });
    }
    Ok(RelationshipFilter {
        resource_type: opt(&f.resource_type),
        resource_id: opt(&f.optional_resource_id),
        resource_id_prefix: opt(&f.optional_resource_id_prefix),
        relation: opt(&f.optional_relation),
        subject,
    })
}

fn subject_filter(field: &str, s: &pb::SubjectFilter) -> Result<SubjectFilter, ApiError> {
    object_type(&format!("{field}.subject_type"), &s.subject_type)?;
    if !s.optional_subject_id.is_empty() {
        validate_subject_id(&s.optional_subject_id).map_err(|e| {
            ApiError::field(format!("{field}.optional_subject_id"), &e.value, e.rule)
        })?;
    }
    let relation = match &s.optional_relation {
        None => None,
        Some(r) if r.relation.is_empty() || r.relation == "..." => Some(None),
        Some(r) => {
            relation_name(&format!("{field}.optional_relation.relation"), &r.relation)?;
            Some(Some(r.relation.clone()))
        }
    };
    Ok(SubjectFilter {
        subject_type: s.subject_type.clone(),
        subject_id: (!s.optional_subject_id.is_empty()).then(|| s.optional_subject_id.clone()),
        relation,
    })
}

/// A filter as text for messages and `ErrorInfo` metadata.
pub fn filter_text(f: &pb::RelationshipFilter) -> String {
    let mut parts = vec![format!("resource_type:{}", f.resource_type)];
    if !f.optional_resource_id.is_empty() {
        parts.push(format!("optional_resource_id:{}", f.optional_resource_id));
    }
    if !f.optional_resource_id_prefix.is_empty() {
        parts.push(format!(
            "optional_resource_id_prefix:{}",
            f.optional_resource_id_prefix
        ));
    }
    if !f.optional_relation.is_empty() {
        parts.push(format!("optional_relation:{}", f.optional_relation));
    }
    if let Some(s) = &f.optional_subject_filter {
        let mut sub = format!("subject_type:{}", s.subject_type);
        if !s.optional_subject_id.is_empty() {
            sub.push_str(&format!(" optional_subject_id:{}", s.optional_subject_id));
        }
        if let Some(r) = &s.optional_relation {
            sub.push_str(&format!(" optional_relation:{{relation:{}}}", r.relation));
        }
        parts.push(format!("optional_subject_filter:{{{sub}}}"));
    }
    parts.join(" ")
}

/// Fails unless the filter's types and relations exist in `schema`, as SpiceDB checks filters.
pub fn check_filter_schema(
    schema: Option<&Schema>,
    f: &RelationshipFilter,
) -> Result<(), ApiError> {
    if let Some(t) = &f.resource_type {
        check_type_relation(schema, t, f.relation.as_deref())?;
    }
    if let Some(s) = &f.subject {
        let rel = match &s.relation {
            Some(Some(r)) => Some(r.as_str()),
            _ => None,
        };
        check_type_relation(schema, &s.subject_type, rel)?;
    }
    Ok(())
}

/// Fails unless `object_type` (and `relation`, if given) exist in `schema`.
pub fn check_type_relation(
    schema: Option<&Schema>,
    object_type: &str,
    relation: Option<&str>,
) -> Result<(), ApiError> {
    let def = schema
        .and_then(|s| s.definition(object_type))
        .ok_or_else(|| ApiError::UnknownDefinition(object_type.to_string()))?;
    if let Some(r) = relation {
        if def.relation(r).is_none() {
            return Err(ApiError::UnknownRelation {
                definition: object_type.to_string(),
                relation: r.to_string(),
            });
        }
    }
    Ok(())
}

/// A write precondition from the wire.
pub fn precondition(field: &str, p: &pb::Precondition) -> Result<Precondition, ApiError> {
    if p.filter.is_none() {
        return Err(ApiError::EmptyPrecondition);
    }
    let op = match pb::precondition::Operation::try_from(p.operation) {
        Ok(pb::precondition::Operation::MustMatch) => PreconditionOp::MustMatch,
        Ok(pb::precondition::Operation::MustNotMatch) => PreconditionOp::MustNotMatch,
        _ => {
            return Err(ApiError::field(
                format!("{field}.operation"),
                p.operation.to_string(),
                "the operation must be OPERATION_MUST_MATCH or OPERATION_MUST_NOT_MATCH",
            ));
        }
    };
    Ok(Precondition {
        op,
        filter: filter(&format!("{field}.filter"), p.filter.as_ref())?,
    })
}

/// The `ErrorInfo` metadata of a failed precondition, as SpiceDB builds it.
pub fn precondition_failure(p: &pb::Precondition) -> ApiError {
    let mut metadata = Metadata::new();
    let op = pb::precondition::Operation::try_from(p.operation)
        .map(|o| o.as_str_name().to_string())
        .unwrap_or_default();
    metadata.insert("precondition_operation".to_string(), op.clone());
    let mut description = op;
    if let Some(f) = &p.filter {
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                metadata.insert(k.to_string(), v.to_string());
            }
        };
        put("precondition_resource_type", &f.resource_type);
        put("precondition_resource_id", &f.optional_resource_id);
        put(
            "precondition_resource_id_prefix",
            &f.optional_resource_id_prefix,
        );
        put("precondition_relation", &f.optional_relation);
        if let Some(s) = &f.optional_subject_filter {
            metadata.insert(
                "precondition_subject_type".to_string(),
                s.subject_type.clone(),
            );
            if !s.optional_subject_id.is_empty() {
                metadata.insert(
                    "precondition_subject_id".to_string(),
                    s.optional_subject_id.clone(),
                );
            }
            if let Some(r) = &s.optional_relation {
                metadata.insert(
                    "precondition_subject_relation".to_string(),
                    r.relation.clone(),
                );
            }
        }
        description = format!("{description} {}", filter_text(f));
    }
    ApiError::PreconditionFailed {
        description,
        metadata,
    }
}

/// The metadata SpiceDB attaches to a refused transactional delete.
pub fn delete_filter_metadata(limit: u32, f: &pb::RelationshipFilter) -> Metadata {
    let mut m = Metadata::new();
    m.insert("limit".to_string(), limit.to_string());
    m.insert("filter_resource_type".to_string(), f.resource_type.clone());
    if !f.optional_resource_id.is_empty() {
        m.insert(
            "filter_resource_id".to_string(),
            f.optional_resource_id.clone(),
        );
    }
    if !f.optional_relation.is_empty() {
        m.insert("filter_relation".to_string(), f.optional_relation.clone());
    }
    if let Some(s) = &f.optional_subject_filter {
        m.insert("filter_subject_type".to_string(), s.subject_type.clone());
        if !s.optional_subject_id.is_empty() {
            m.insert(
                "filter_subject_id".to_string(),
                s.optional_subject_id.clone(),
            );
        }
        if let Some(r) = &s.optional_relation {
            m.insert("filter_subject_relation".to_string(), r.relation.clone());
        }
    }
    m
}

/// The `ErrorInfo` metadata of a CREATE that found the relationship, as SpiceDB builds it.
pub fn already_exists(r: &Relationship) -> ApiError {
    let mut m = Metadata::new();
    let key = relationship_key_text(r);
    m.insert("relationship".to_string(), key.clone());
    m.insert(
        "resource_type".to_string(),
        r.resource().object_type().to_string(),
    );
    m.insert(
        "resource_object_id".to_string(),
        r.resource().object_id().to_string(),
    );
    m.insert("resource_relation".to_string(), r.relation().to_string());
    m.insert(
        "subject_type".to_string(),
        r.subject().object_type().to_string(),
    );
    m.insert(
        "subject_object_id".to_string(),
        r.subject().object_id().to_string(),
    );
    m.insert(
        "subject_relation".to_string(),
        r.subject().relation().unwrap_or_default().to_string(),
    );
    ApiError::AlreadyExists {
        relationship: key,
        metadata: m,
    }
}

/// An expand tree on the wire (caveats have no place in `PermissionRelationshipTree`).
pub fn expand_tree_to_proto(tree: &ExpandTree) -> pb::PermissionRelationshipTree {
    use pb::algebraic_subject_set::Operation;
    use pb::permission_relationship_tree::TreeType;
    let algebraic = |op: Operation, children: Vec<pb::PermissionRelationshipTree>| {
        TreeType::Intermediate(pb::AlgebraicSubjectSet {
            operation: op as i32,
            children,
        })
    };
    let tree_type = match &tree.node {
        ExpandNode::Leaf(subjects) => TreeType::Leaf(pb::DirectSubjectSet {
            subjects: subjects
                .iter()
                .map(|s| subject_to_proto(&s.subject))
                .collect(),
        }),
        ExpandNode::Union(children) => algebraic(
            Operation::Union,
            children.iter().map(expand_tree_to_proto).collect(),
        ),
        ExpandNode::Intersection(children) => algebraic(
            Operation::Intersection,
            children.iter().map(expand_tree_to_proto).collect(),
        ),
        ExpandNode::Exclusion(base, sub) => algebraic(
            Operation::Exclusion,
            vec![expand_tree_to_proto(base), expand_tree_to_proto(sub)],
        ),
    };
    pb::PermissionRelationshipTree {
        tree_type: Some(tree_type),
        expanded_object: Some(object_to_proto(&tree.object)),
        expanded_relation: tree.relation.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(t: &str, id: &str) -> pb::ObjectReference {
        pb::ObjectReference {
            object_type: t.to_string(),
            object_id: id.to_string(),
        }
    }

    #[test]
    fn malformed_fields_are_named_with_their_value() {
        let e = object_ref("resource", Some(&obj("document", "a b"))).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid `resource.object_id` `a b`"),
            "{e}"
        );
        let e = object_ref("resource", Some(&obj("Doc", "x"))).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid `resource.object_type` `Doc`"),
            "{e}"
        );
        let e = object_ref("resource", None).unwrap_err();
        assert!(e.to_string().contains("required"), "{e}");
        let s = pb::SubjectReference {
            object: Some(obj("user", "*")),
            optional_relation: "member".to_string(),
        };
        let e = subject_ref("subject", Some(&s)).unwrap_err();
        assert!(e.to_string().contains("`subject.optional_relation`"), "{e}");
    }

    #[test]
    fn relationships_round_trip_with_caveat_and_expiration() {
        let text = r#"doc:1#viewer@user:tom[cav:{"a":1,"b":[true,"x"],"c":1.5}][expiration:2030-01-01T00:00:00Z]"#;
        let rel = Relationship::parse(text).unwrap();
        let wire = relationship_to_proto(&rel);
        let back = relationship("r", Some(&wire)).unwrap();
        assert_eq!(back, rel);
    }

    #[test]
    fn filters_need_a_field_and_not_both_id_forms() {
        let empty = pb::RelationshipFilter::default();
        assert!(matches!(
            filter("f", Some(&empty)).unwrap_err(),
            ApiError::InvalidFilter { .. }
        ));
        let both = pb::RelationshipFilter {
            resource_type: "doc".to_string(),
            optional_resource_id: "a".to_string(),
            optional_resource_id_prefix: "a".to_string(),
            ..Default::default()
        };
        assert!(matches!(
            filter("f", Some(&both)).unwrap_err(),
            ApiError::InvalidFilter { .. }
        ));
        let ellipsis = pb::RelationshipFilter {
            resource_type: "doc".to_string(),
            optional_subject_filter: Some(pb::SubjectFilter {
                subject_type: "user".to_string(),
                optional_subject_id: String::new(),
                optional_relation: Some(pb::subject_filter::RelationFilter {
                    relation: String::new(),
                }),
            }),
            ..Default::default()
        };
        let f = filter("f", Some(&ellipsis)).unwrap();
        assert_eq!(f.subject.unwrap().relation, Some(None));
    }

    #[test]
    fn timestamps_convert_both_ways_and_refuse_bad_nanos() {
        let t = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 123_456_000,
        };
        let m = timestamp("t", &t).unwrap();
        assert_eq!(timestamp_to_proto(m), t);
        let bad = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert!(timestamp("t", &bad).is_err());
        let bad = prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert!(timestamp("t", &bad).is_err());
    }

    #[test]
    fn deeply_nested_context_is_refused_not_overflowed() {
        let mut v = prost_types::Value {
            kind: Some(Kind::NullValue(0)),
        };
        for _ in 0..200 {
            v = prost_types::Value {
                kind: Some(Kind::ListValue(prost_types::ListValue { values: vec![v] })),
            };
        }
        let s = prost_types::Struct {
            fields: [("x".to_string(), v)].into_iter().collect(),
        };
        assert!(context("context", Some(&s)).is_err());
    }
}
