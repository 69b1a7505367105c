//! `CaveatExpr`: the condition a conditional result rests on, built from the caveats met on the way.

use std::fmt;
use std::sync::Arc;

use crate::model::ContextMap;

/// A boolean formula over caveat instances.
#[derive(Debug, Clone, PartialEq)]
pub enum CaveatExpr {
    /// One caveat with the context bound on its relationship.
    Caveat {
        /// The caveat's name.
        name: String,
        /// The context stored on the relationship.
        context: ContextMap,
        /// The relationship it is bound on (`resource#relation@subject`), for messages.
        relationship: Option<Arc<str>>,
    },
    /// All must hold.
    And(Vec<CaveatExpr>),
    /// Any must hold.
    Or(Vec<CaveatExpr>),
    /// Must not hold.
    Not(Box<CaveatExpr>),
}

impl CaveatExpr {
    /// `a AND b`, flattening nested ANDs.
    pub fn and(a: CaveatExpr, b: CaveatExpr) -> CaveatExpr {
        let mut items = Vec::new();
        for e in [a, b] {
            match e {
                CaveatExpr::And(inner) => items.extend(inner),
                other => items.push(other),
            }
        }
        CaveatExpr::And(items)
    }

    /// `a OR b`, flattening nested ORs.
    pub fn or(a: CaveatExpr, b: CaveatExpr) -> CaveatExpr {
        let mut items = Vec::new();
        for e in [a, b] {
            match e {
                CaveatExpr::Or(inner) => items.extend(inner),
                other => items.push(other),
            }
        }
        CaveatExpr::Or(items)
    }

    /// `NOT a`.
    pub fn negate(a: CaveatExpr) -> CaveatExpr {
        match a {
            CaveatExpr::Not(inner) => *inner,
            other => CaveatExpr::Not(Box::new(other)),
        }
    }

    /// The names of every caveat in the formula, in order of first appearance.
    pub fn caveat_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        self.collect_names(&mut out);
        out
    }

    fn collect_names<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            CaveatExpr::Caveat { name, .. } => {
                if !out.contains(&name.as_str()) {
                    out.push(name);
                }
            }
            CaveatExpr::And(items) | CaveatExpr::Or(items) => {
                items.iter().for_each(|i| i.collect_names(out));
            }
            CaveatExpr::Not(inner) => inner.collect_names(out),
        }
    }
}

impl fmt::Display for CaveatExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaveatExpr::Caveat { name, .. } => f.write_str(name),
            CaveatExpr::And(items) | CaveatExpr::Or(items) => {
                let sep = if matches!(self, CaveatExpr::And(_)) {
                    " && "
                } else {
                    " || "
                };
                f.write_str("(")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str(")")
            }
            CaveatExpr::Not(inner) => write!(f, "!{inner}"),
        }
    }
}
