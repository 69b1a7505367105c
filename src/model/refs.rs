//! `ObjectRef` (type:id) and `SubjectRef` (type:id with an optional relation), validated on construction.

use std::fmt;
use std::sync::Arc;

use super::names::{
    ELLIPSIS, NameError, WILDCARD, validate_object_id, validate_object_type,
    validate_relation_name, validate_subject_id,
};

/// A typed object, `document:q3`. Construction validates the syntax.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    object_type: Arc<str>,
    object_id: Arc<str>,
}

impl ObjectRef {
    /// A resource object: the id may not be the wildcard.
    pub fn new(object_type: &str, object_id: &str) -> Result<Self, NameError> {
        validate_object_type(object_type)?;
        validate_object_id(object_id)?;
        Ok(Self::new_unchecked(object_type, object_id))
    }

    /// Used where both parts were validated already (store decoding, wildcard subjects).
    pub(crate) fn new_unchecked(object_type: &str, object_id: &str) -> Self {
        ObjectRef {
            object_type: Arc::from(object_type),
            object_id: Arc::from(object_id),
        }
    }

    /// Built from parts already validated and shared (a lookup's walk shares one type
    /// string among every object it reaches).
    pub(crate) fn from_shared(object_type: Arc<str>, object_id: Arc<str>) -> Self {
        ObjectRef {
            object_type,
            object_id,
        }
    }

    /// The object type (definition name).
    pub fn object_type(&self) -> &str {
        &self.object_type
    }

    /// The object id.
    pub fn object_id(&self) -> &str {
        &self.object_id
    }

    /// Whether this is the wildcard `type:*` (only possible inside a `SubjectRef`).
    pub fn is_wildcard(&self) -> bool {
        &*self.object_id == WILDCARD
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.object_type, self.object_id)
    }
}

/// A subject: an object, a wildcard `type:*`, or a userset `type:id#relation`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubjectRef {
    object: ObjectRef,
    relation: Option<Arc<str>>,
}

impl SubjectRef {
    /// Validates and builds a subject. A relation of `...` or `None` means the object itself.
    pub fn new(
        object_type: &str,
        object_id: &str,
        relation: Option<&str>,
    ) -> Result<Self, NameError> {
        validate_object_type(object_type)?;
        validate_subject_id(object_id)?;
        let relation = match relation {
            None | Some(ELLIPSIS) | Some("") => None,
            Some(r) => {
                validate_relation_name(r)?;
                if object_id == WILDCARD {
                    return Err(NameError {
                        kind: "subject",
                        value: format!("{object_type}:{object_id}#{r}"),
                        rule: "a wildcard subject cannot have a relation",
                    });
                }
                Some(Arc::from(r))
            }
        };
        Ok(SubjectRef {
            object: ObjectRef::new_unchecked(object_type, object_id),
            relation,
        })
    }

    /// The subject object itself (no relation).
    pub fn from_object(object: ObjectRef) -> Self {
        SubjectRef {
            object,
            relation: None,
        }
    }

    /// The subject object.
    pub fn object(&self) -> &ObjectRef {
        &self.object
    }

    /// The subject type.
    pub fn object_type(&self) -> &str {
        self.object.object_type()
    }

    /// The subject id (maybe `*`).
    pub fn object_id(&self) -> &str {
        self.object.object_id()
    }

    /// The userset relation, `None` for the object itself.
    pub fn relation(&self) -> Option<&str> {
        self.relation.as_deref()
    }

    /// Whether this is `type:*`.
    pub fn is_wildcard(&self) -> bool {
        self.object.is_wildcard()
    }
}

impl fmt::Display for SubjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.relation {
            Some(r) => write!(f, "{}#{}", self.object, r),
            None => write!(f, "{}", self.object),
        }
    }
}
