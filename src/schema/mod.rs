//! The schema language: lexer → parser (AST with spans, every error reported) → checker → `Schema`.

mod ast;
mod caveat;
mod checker;
mod compiled;
mod error;
mod lexer;
mod parser;
mod relationship_check;

pub use caveat::{CaveatProgram, MAX_EXPRESSION_CHARS, MAX_PARSE_DEPTH};
pub use compiled::{
    AllowedKind, AllowedSubject, ArrowKind, CaveatDefinition, CaveatType, Definition, RelationDef,
    RelationKind, Rewrite, Schema, Span,
};
pub use error::{RelationshipSchemaError, SchemaError, SchemaErrors};

/// Parses and type-checks schema text into a `Schema`, or returns every error found,
/// sorted by position. Never panics, whatever the input.
pub fn compile(source: &str) -> Result<Schema, SchemaErrors> {
    let (file, mut errors) = parser::parse(source);
    let checked = checker::check(&file);
    errors.extend(checked.errors);
    if !errors.is_empty() {
        return Err(SchemaErrors(by_position(errors)));
    }
    Ok(Schema {
        definitions: checked.definitions,
        caveats: checked.caveats,
        uses_expiration: file.uses_expiration,
        source: source.to_string(),
        warnings: by_position(checked.warnings),
    })
}

/// Sorts problems by position, keeping only the first reported at each position
/// (a lexical error and the syntax error it causes land on the same token).
fn by_position(mut problems: Vec<SchemaError>) -> Vec<SchemaError> {
    problems.sort_by_key(|e| e.span);
    problems.dedup_by_key(|e| e.span);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_comment_only_schemas_compile() {
        for text in ["", "\n\n", "// nothing\n/* at all */", "\u{feff}"] {
            let schema = compile(text).unwrap();
            assert_eq!(schema.definitions().count(), 0);
            assert_eq!(schema.source(), text);
        }
    }

    #[test]
    fn errors_are_sorted_and_one_per_position() {
        // The unterminated string is reported by the lexer and would be again by the parser.
        let errors =
            compile("definition doc {\n relation rel: \"abc }\n}\ndefinition doc {}").unwrap_err();
        let shown: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "2:16: unterminated string",
                "4:12: duplicate definition `doc`: already declared at 1:1"
            ]
        );
        assert_eq!(
            errors.first().map(|e| e.span.to_string()).as_deref(),
            Some("2:16")
        );
        assert_eq!(
            errors.to_string(),
            "2:16: unterminated string\n4:12: duplicate definition `doc`: already declared at 1:1"
        );
    }

    #[test]
    fn top_level_garbage_does_not_hide_later_items() {
        let errors =
            compile("definiton user {}\ndefinition doc {\n relation viewer: usr\n}\n").unwrap_err();
        let shown: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
        // `usr` is not reported: the garbage may have been its definition.
        assert_eq!(
            shown,
            vec!["1:1: expected `definition`, `caveat` or `use`, found `definiton`"]
        );
    }
}
