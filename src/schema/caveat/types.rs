//! `CelType`: the types the caveat type checker reasons with — CEL's, with SpiceDB's mapping
//! of parameter types onto them (`uint` is checked as `int`, `any` as `dyn`, `map<T>` has
//! string keys, `ipaddress` is an opaque type).

use std::fmt;

use super::super::compiled::CaveatType;

/// A CEL type as the checker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CelType {
    /// Any type, decided at evaluation (`any` parameters, `dyn(x)`).
    Dyn,
    /// Not known yet: the element type of an empty list or map literal, or of
    /// `optional.none()`. Joins with anything to that thing.
    Free,
    /// The type of an expression already reported as wrong; matches everything, so one
    /// mistake is reported once.
    Error,
    /// `null_type`
    Null,
    /// `bool`
    Bool,
    /// `int`
    Int,
    /// `uint`
    UInt,
    /// `double`
    Double,
    /// `string`
    String,
    /// `bytes`
    Bytes,
    /// `google.protobuf.Duration`
    Duration,
    /// `google.protobuf.Timestamp`
    Timestamp,
    /// SpiceDB's opaque `ipaddress`.
    IpAddress,
    /// `list(T)`
    List(Box<CelType>),
    /// `map(K, V)`
    Map(Box<CelType>, Box<CelType>),
    /// `optional_type(T)`
    Optional(Box<CelType>),
    /// A type value: `int`, `type(x)`.
    Type,
}

impl CelType {
    /// The CEL type of a declared caveat parameter, as SpiceDB declares it.
    pub(crate) fn of_parameter(ty: &CaveatType) -> CelType {
        match ty {
            CaveatType::Any => CelType::Dyn,
            CaveatType::Bool => CelType::Bool,
            // SpiceDB registers `uint` with CEL's `int` type (its values are unsigned at
            // evaluation): `count < limit` with two `uint` parameters type-checks as ints.
            CaveatType::Int | CaveatType::UInt => CelType::Int,
            CaveatType::Double => CelType::Double,
            CaveatType::String => CelType::String,
            CaveatType::Bytes => CelType::Bytes,
            CaveatType::Duration => CelType::Duration,
            CaveatType::Timestamp => CelType::Timestamp,
            CaveatType::IpAddress => CelType::IpAddress,
            CaveatType::List(t) => CelType::List(Box::new(CelType::of_parameter(t))),
            CaveatType::Map(t) => CelType::Map(
                Box::new(CelType::String),
                Box::new(CelType::of_parameter(t)),
            ),
        }
    }

    /// Whether the type is only known at evaluation (or already wrong): it then matches
    /// every overload.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self, CelType::Dyn | CelType::Free | CelType::Error)
    }

    /// Whether a value of this type may be of type `want` (open types match anything,
    /// structurally).
    pub(crate) fn fits(&self, want: &CelType) -> bool {
        if self.is_open() || want.is_open() {
            return true;
        }
        match (self, want) {
            (CelType::List(a), CelType::List(b)) | (CelType::Optional(a), CelType::Optional(b)) => {
                a.fits(b)
            }
            (CelType::Map(ak, av), CelType::Map(bk, bv)) => ak.fits(bk) && av.fits(bv),
            _ => self == want,
        }
    }

    /// The type both `a` and `b` are, if they can be one: `Free` takes the other's type,
    /// `Dyn` absorbs, structures join element-wise. `None` when they differ.
    pub(crate) fn join(a: &CelType, b: &CelType) -> Option<CelType> {
        match (a, b) {
            (CelType::Error, _) | (_, CelType::Error) => Some(CelType::Error),
            (CelType::Free, other) | (other, CelType::Free) => Some(other.clone()),
            (CelType::Dyn, _) | (_, CelType::Dyn) => Some(CelType::Dyn),
            (CelType::List(x), CelType::List(y)) => {
                Some(CelType::List(Box::new(CelType::join(x, y)?)))
            }
            (CelType::Optional(x), CelType::Optional(y)) => {
                Some(CelType::Optional(Box::new(CelType::join(x, y)?)))
            }
            (CelType::Map(xk, xv), CelType::Map(yk, yv)) => Some(CelType::Map(
                Box::new(CelType::join(xk, yk)?),
                Box::new(CelType::join(xv, yv)?),
            )),
            _ if a == b => Some(a.clone()),
            _ => None,
        }
    }

    /// Like `join`, but types that differ make `dyn` (list and map literals with elements of
    /// several types, as CEL allows).
    pub(crate) fn join_or_dyn(a: &CelType, b: &CelType) -> CelType {
        CelType::join(a, b).unwrap_or(CelType::Dyn)
    }

    /// Whether the type contains `Free` somewhere (it is not fully known yet).
    pub(crate) fn has_free(&self) -> bool {
        match self {
            CelType::Free => true,
            CelType::List(t) | CelType::Optional(t) => t.has_free(),
            CelType::Map(k, v) => k.has_free() || v.has_free(),
            _ => false,
        }
    }

    /// Whether values of this type are ordered with `<` against values of `other`: the same
    /// ordered type, or two numeric types (CEL compares numbers across types).
    pub(crate) fn orders_with(&self, other: &CelType) -> bool {
        if self.is_open() || other.is_open() {
            return true;
        }
        let numeric = |t: &CelType| matches!(t, CelType::Int | CelType::UInt | CelType::Double);
        if numeric(self) && numeric(other) {
            return true;
        }
        self == other
            && matches!(
                self,
                CelType::Bool
                    | CelType::String
                    | CelType::Bytes
                    | CelType::Duration
                    | CelType::Timestamp
            )
    }
}

impl fmt::Display for CelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CelType::Dyn | CelType::Error => f.write_str("dyn"),
            CelType::Free => f.write_str("_"),
            CelType::Null => f.write_str("null_type"),
            CelType::Bool => f.write_str("bool"),
            CelType::Int => f.write_str("int"),
            CelType::UInt => f.write_str("uint"),
            CelType::Double => f.write_str("double"),
            CelType::String => f.write_str("string"),
            CelType::Bytes => f.write_str("bytes"),
            CelType::Duration => f.write_str("duration"),
            CelType::Timestamp => f.write_str("timestamp"),
            CelType::IpAddress => f.write_str("ipaddress"),
            CelType::List(t) => write!(f, "list({t})"),
            CelType::Map(k, v) => write!(f, "map({k}, {v})"),
            CelType::Optional(t) => write!(f, "optional({t})"),
            CelType::Type => f.write_str("type"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(t: CelType) -> CelType {
        CelType::List(Box::new(t))
    }

    #[test]
    fn parameters_map_as_spicedb_declares_them() {
        assert_eq!(CelType::of_parameter(&CaveatType::UInt), CelType::Int);
        assert_eq!(CelType::of_parameter(&CaveatType::Any), CelType::Dyn);
        assert_eq!(
            CelType::of_parameter(&CaveatType::Map(Box::new(CaveatType::List(Box::new(
                CaveatType::Bool
            )))))
            .to_string(),
            "map(string, list(bool))"
        );
    }

    #[test]
    fn joins_and_fits() {
        assert_eq!(
            CelType::join(&list(CelType::Free), &list(CelType::Int)),
            Some(list(CelType::Int))
        );
        assert_eq!(CelType::join(&CelType::Int, &CelType::String), None);
        assert_eq!(
            CelType::join_or_dyn(&CelType::Int, &CelType::String),
            CelType::Dyn
        );
        assert!(list(CelType::Int).fits(&list(CelType::Dyn)));
        assert!(!list(CelType::Int).fits(&list(CelType::String)));
        assert!(CelType::Int.orders_with(&CelType::Double));
        assert!(!CelType::Int.orders_with(&CelType::String));
        assert!(!CelType::IpAddress.orders_with(&CelType::IpAddress));
        assert!(list(CelType::Free).has_free());
    }
}
