//! `Report`: what running one validation file found — its failures, and the resulting
//! `Outcome`.

use std::fmt::{self, Write as _};

use super::locate::Position;

/// The verdict on one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every assertion and validation entry holds.
    Passed,
    /// At least one assertion or validation entry does not hold.
    Failed,
}

/// What kind of check a failure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// An `assertTrue` item.
    AssertTrue,
    /// An `assertFalse` item.
    AssertFalse,
    /// An `assertCaveated` item.
    AssertCaveated,
    /// A `validation:` entry or one of its expected subjects.
    Validation,
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckKind::AssertTrue => "assertTrue",
            CheckKind::AssertFalse => "assertFalse",
            CheckKind::AssertCaveated => "assertCaveated",
            CheckKind::Validation => "validation",
        })
    }
}

/// One check that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Which kind of check.
    pub check: CheckKind,
    /// Where the check is written in the file.
    pub position: Position,
    /// What does not hold, for a person.
    pub message: String,
    /// What the file expects, when it helps to show it.
    pub expected: Option<String>,
    /// What Arbor computed, when it helps to show it.
    pub actual: Option<String>,
}

/// The result of running one validation file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// The file, as named in messages.
    pub file: String,
    /// How many relationships were loaded.
    pub relationships: usize,
    /// How many assertions were run.
    pub assertions: usize,
    /// How many expected subjects (plus entries) were compared.
    pub validation_entries: usize,
    /// Checks that do not hold.
    pub failures: Vec<Failure>,
}

impl Report {
    /// The verdict: failed if anything failed, else passed.
    pub fn outcome(&self) -> Outcome {
        if self.failures.is_empty() {
            Outcome::Passed
        } else {
            Outcome::Failed
        }
    }

    /// A human-readable report: one summary line, then each failure.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let checks = format!(
            "{}, {}, {}",
            counted(self.relationships, "relationship"),
            counted(self.assertions, "assertion"),
            counted(self.validation_entries, "validation check")
        );
        match self.outcome() {
            Outcome::Passed => {
                let _ = writeln!(out, "{}: ok ({checks})", self.file);
            }
            Outcome::Failed => {
                let _ = writeln!(
                    out,
                    "{}: FAILED: {} check{} failed ({checks})",
                    self.file,
                    self.failures.len(),
                    if self.failures.len() == 1 { "" } else { "s" }
                );
            }
        }
        for f in &self.failures {
            let _ = writeln!(
                out,
                "{}:{}: {}: {}",
                self.file, f.position, f.check, f.message
            );
            if let Some(e) = &f.expected {
                let _ = writeln!(out, "    expected: {e}");
            }
            if let Some(a) = &f.actual {
                let _ = writeln!(out, "    actual:   {a}");
            }
        }
        out
    }
}

/// `1 thing` or `N things`.
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_and_rendering() {
        let mut r = Report {
            file: "f.yaml".to_string(),
            relationships: 1,
            ..Report::default()
        };
        assert_eq!(r.outcome(), Outcome::Passed);
        assert_eq!(
            r.render(),
            "f.yaml: ok (1 relationship, 0 assertions, 0 validation checks)\n"
        );
        r.failures.push(Failure {
            check: CheckKind::Validation,
            position: Position::new(9, 5),
            message: "x".to_string(),
            expected: Some("e".to_string()),
            actual: None,
        });
        assert_eq!(r.outcome(), Outcome::Failed);
        assert!(
            r.render()
                .contains("f.yaml:9:5: validation: x\n    expected: e")
        );
    }
}
