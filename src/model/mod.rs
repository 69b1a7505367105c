//! Core value types shared by every layer: revisions, object and subject references,
//! relationships, filters, and SpiceDB's name and id syntax. No I/O, never panics.

mod context;
mod filter;
mod names;
mod refs;
mod relationship;
mod revision;
mod timestamp;

pub use context::{ContextMap, ContextValue};
pub use filter::{RelationshipFilter, SubjectFilter};
pub use names::{
    ELLIPSIS, MAX_OBJECT_ID_LEN, NameError, WILDCARD, validate_caveat_name, validate_object_id,
    validate_object_type, validate_relation_name, validate_subject_id,
};
pub use refs::{ObjectRef, SubjectRef};
pub use relationship::{CaveatRef, ParseRelationshipError, Relationship};
pub use revision::Revision;
pub use timestamp::{Timestamp, TimestampError};
