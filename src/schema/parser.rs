//! The schema parser: tokens → `ast::File`, with SpiceDB's grammar and precedence
//! (`+` binds tightest, then `&`, then `-`), reporting every syntax error and recovering
//! at the next statement, `definition` or `caveat`.

use super::ast::{
    CaveatAst, DefinitionAst, Expr, ExprKind, File, Ident, Member, ParamAst, PermissionAst,
    RelationAst, TypeAst, TypeRefAst, TypeRefKind,
};
use super::compiled::{ArrowKind, Span};
use super::error::SchemaError;
use super::lexer::{Token, TokenKind, lex};

/// Deepest nesting of parentheses (and of caveat parameter types) the parser follows.
pub(crate) const MAX_NESTING: usize = 100;

/// Highest permission expression tree accepted (an exclusion chain `a - b - c ...` grows it
/// without parentheses); keeps every later walk of the tree shallow.
pub(crate) const MAX_EXPR_DEPTH: usize = 200;

/// Words that cannot be names (SpiceDB's keywords).
const KEYWORDS: [&str; 6] = [
    "definition",
    "caveat",
    "relation",
    "permission",
    "nil",
    "with",
];

/// `use` flags SpiceDB knows, sorted.
const USE_FLAGS: [&str; 5] = ["expiration", "import", "partial", "self", "typechecking"];

/// Parses schema text. Returns the tree of everything that parsed and every error
/// (lexical and syntactic), in the order found.
pub(crate) fn parse(source: &str) -> (File, Vec<SchemaError>) {
    let lexed = lex(source);
    let eof_span = lexed.tokens.last().map(|t| t.span).unwrap_or_default();
    let mut parser = Parser {
        source,
        tokens: lexed.tokens,
        eof: Token {
            kind: TokenKind::Eof,
            start: source.len(),
            end: source.len(),
            span: eof_span,
            doc: None,
        },
        pos: 0,
        errors: lexed.errors,
        file: File::default(),
        seen_item: false,
    };
    parser.file_items();
    (parser.file, parser.errors)
}

/// A character for a message: in backticks, or as `U+XXXX` when backticks would not show it.
fn show_char(text: &str) -> String {
    match text.chars().next() {
        Some(c) if c == '`' || c.is_whitespace() || c.is_control() => {
            format!("U+{:04X}", u32::from(c))
        }
        _ => format!("`{text}`"),
    }
}

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<Token>,
    eof: Token,
    pos: usize,
    errors: Vec<SchemaError>,
    file: File,
    /// A definition or caveat was seen (after which `use` is an error).
    seen_item: bool,
}

/// How a definition-body statement ended.
enum Statement {
    Parsed(Member),
    Empty,
    Failed,
}

impl Parser<'_> {
    // ---- cursor ----

    fn tok(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&self.eof)
    }

    fn kind(&self) -> TokenKind {
        self.tok().kind
    }

    fn text(&self) -> &str {
        self.tok().text(self.source)
    }

    fn span(&self) -> Span {
        self.tok().span
    }

    fn advance(&mut self) -> Token {
        let tok = self.tok().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        tok
    }

    fn at(&self, kind: TokenKind) -> bool {
        self.kind() == kind
    }

    /// Whether the current token is the word `word` (keyword or not).
    fn at_word(&self, word: &str) -> bool {
        self.at(TokenKind::Ident) && self.text() == word
    }

    fn is_keyword(&self, word: &str) -> bool {
        KEYWORDS.contains(&word)
            || (self.file.uses_expiration && (word == "expiration" || word == "and"))
    }

    fn at_terminator(&self) -> bool {
        matches!(
            self.kind(),
            TokenKind::Semicolon | TokenKind::SyntheticSemicolon
        )
    }

    /// How to name the current token in a message.
    fn found(&self) -> String {
        let text = self.text();
        match self.kind() {
            TokenKind::Eof => "the end of the schema".to_string(),
            TokenKind::SyntheticSemicolon => "a new line".to_string(),
            TokenKind::Str => "a string".to_string(),
            TokenKind::Unknown => format!("the character {}", show_char(text)),
            TokenKind::Ident if self.is_keyword(text) => format!("keyword `{text}`"),
            _ => format!("`{text}`"),
        }
    }

    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.errors.push(SchemaError {
            span,
            message: message.into(),
        });
    }

    /// Reports "expected {what}, found ..." at the current token.
    fn expected(&mut self, what: &str) {
        let message = format!("expected {what}, found {}", self.found());
        let span = self.span();
        self.error(span, message);
    }

    fn expect(&mut self, kind: TokenKind, what: &str) -> Option<Token> {
        if self.at(kind) {
            Some(self.advance())
        } else {
            self.expected(what);
            None
        }
    }

    /// A name that is not a keyword.
    fn name(&mut self, what: &str) -> Option<Ident> {
        if self.at(TokenKind::Ident) && !self.is_keyword(self.text()) {
            let span = self.span();
            let text = self.text().to_string();
            self.advance();
            Some(Ident { text, span })
        } else {
            self.expected(what);
            None
        }
    }

    /// `name` or `prefix/name` (any number of `/`-separated parts).
    fn type_path(&mut self, what: &str) -> Option<Ident> {
        let mut path = self.name(what)?;
        while self.at(TokenKind::Slash) {
            self.advance();
            let part = self.name(&format!("a name after `/` in `{}/`", path.text))?;
            path.text.push('/');
            path.text.push_str(&part.text);
        }
        Some(path)
    }

    // ---- top level ----

    fn file_items(&mut self) {
        loop {
            if self.at(TokenKind::Eof) {
                break;
            }
            // One statement terminator may separate top-level items, as in SpiceDB.
            if self.at_terminator() {
                self.advance();
            }
            if self.at(TokenKind::Eof) {
                break;
            }
            if self.at_word("use") {
                self.use_flag();
            } else if self.at_word("definition") {
                self.definition();
            } else if self.at_word("caveat") {
                self.caveat();
            } else {
                let hint = match self.text() {
                    "import" | "partial" => {
                        format!("; `{}` is not supported by arbor", self.text())
                    }
                    _ => String::new(),
                };
                let message = format!(
                    "expected `definition`, `caveat` or `use`, found {}{hint}",
                    self.found()
                );
                let span = self.span();
                self.error(span, message);
                self.recover_top(true);
            }
        }
    }

    /// Skips to the next `definition` or `caveat` keyword (or the end). `hides_names`: the
    /// skipped text may hold a definition or caveat whose name was not read.
    fn recover_top(&mut self, hides_names: bool) {
        self.file.has_unnamed_items |= hides_names;
        self.advance();
        while !self.at(TokenKind::Eof) && !self.at_word("definition") && !self.at_word("caveat") {
            self.advance();
        }
    }

    fn use_flag(&mut self) {
        let use_span = self.advance().span;
        if !self.at(TokenKind::Ident) {
            self.expected("a flag name after `use`");
            return;
        }
        let flag_span = self.span();
        let flag = self.advance().text(self.source).to_string();
        match flag.as_str() {
            "expiration" => self.file.uses_expiration = true,
            "typechecking" => {}
            "import" | "partial" | "self" => {
                self.error(flag_span, format!("`use {flag}` is not supported by arbor"));
            }
            _ => {
                let options: Vec<String> = USE_FLAGS.iter().map(|f| format!("`{f}`")).collect();
                self.error(
                    flag_span,
                    format!(
                        "unknown use flag `{flag}`; options are: {}",
                        options.join(", ")
                    ),
                );
            }
        }
        if self.seen_item {
            self.error(use_span, "`use` must come before any definition or caveat");
        }
    }

    // ---- definitions ----

    fn definition(&mut self) {
        let keyword = self.advance();
        self.seen_item = true;
        let Some(name) = self.type_path("a definition name") else {
            self.recover_top(true);
            return;
        };
        let mut def = DefinitionAst {
            name,
            span: keyword.span,
            doc: keyword.doc,
            members: Vec::new(),
            had_errors: false,
        };
        if self
            .expect(
                TokenKind::LBrace,
                &format!("`{{` after `definition {}`", def.name.text),
            )
            .is_none()
        {
            def.had_errors = true;
            self.file.definitions.push(def);
            self.recover_top(false);
            return;
        }
        loop {
            match self.kind() {
                TokenKind::RBrace => {
                    self.advance();
                    break;
                }
                TokenKind::Eof => {
                    if !def.had_errors {
                        let message = format!(
                            "expected `}}` to close definition `{}`, found the end of the schema",
                            def.name.text
                        );
                        let span = self.span();
                        self.error(span, message);
                    }
                    def.had_errors = true;
                    break;
                }
                TokenKind::Ident if self.at_word("definition") || self.at_word("caveat") => {
                    if !def.had_errors {
                        let message = format!(
                            "expected `}}` to close definition `{}`, found {}",
                            def.name.text,
                            self.found()
                        );
                        let span = self.span();
                        self.error(span, message);
                    }
                    def.had_errors = true;
                    break;
                }
                _ => {}
            }
            let what = if self.at_word("relation") {
                "relation"
            } else {
                "permission"
            };
            let statement = if self.at_word("relation") {
                self.relation().map_or(Statement::Failed, |r| {
                    Statement::Parsed(Member::Relation(r))
                })
            } else if self.at_word("permission") {
                self.permission().map_or(Statement::Failed, |p| {
                    Statement::Parsed(Member::Permission(p))
                })
            } else if self.at(TokenKind::Ellipsis) {
                let span = self.span();
                self.error(
                    span,
                    "partial references (`...name`) are not supported by arbor",
                );
                Statement::Failed
            } else {
                Statement::Empty
            };
            let was_empty = matches!(statement, Statement::Empty);
            match statement {
                Statement::Failed => {
                    def.had_errors = true;
                    self.recover_statement();
                    continue;
                }
                Statement::Parsed(member) => def.members.push(member),
                Statement::Empty => {}
            }
            if self.at_terminator() {
                self.advance();
            } else if !self.at(TokenKind::Eof) {
                let hint = if self.at_word("and") && !self.file.uses_expiration {
                    "; `with caveat_name and expiration` needs `use expiration` at the top of the schema"
                } else {
                    ""
                };
                let message = if was_empty {
                    format!(
                        "expected `relation`, `permission` or `}}`, found {}",
                        self.found()
                    )
                } else {
                    format!(
                        "expected a new line or `;` after the {what}, found {}{hint}",
                        self.found()
                    )
                };
                let span = self.span();
                self.error(span, message);
                def.had_errors = true;
                self.recover_statement();
            }
        }
        self.file.definitions.push(def);
    }

    /// Skips the rest of a broken statement: past the next terminator, or up to a `}`,
    /// `relation`, `permission`, `definition`, `caveat` or the end.
    fn recover_statement(&mut self) {
        loop {
            match self.kind() {
                TokenKind::Semicolon | TokenKind::SyntheticSemicolon => {
                    self.advance();
                    return;
                }
                TokenKind::RBrace | TokenKind::Eof => return,
                TokenKind::Ident
                    if ["relation", "permission", "definition", "caveat"]
                        .contains(&self.text()) =>
                {
                    return;
                }
                _ => {
                    self.advance();
                }
            }
        }
    }

    fn relation(&mut self) -> Option<RelationAst> {
        let keyword = self.advance();
        let name = self.name("a relation name after `relation`")?;
        self.expect(
            TokenKind::Colon,
            &format!("`:` after `relation {}`", name.text),
        )?;
        let mut types = vec![self.type_ref()?];
        while self.at(TokenKind::Pipe) {
            self.advance();
            types.push(self.type_ref()?);
        }
        Some(RelationAst {
            name,
            span: keyword.span,
            doc: keyword.doc,
            types,
        })
    }

    /// `type`, `type:*`, `type#relation`, `type#...`, each with an optional
    /// `with caveat`, `with expiration` or `with caveat and expiration`.
    fn type_ref(&mut self) -> Option<TypeRefAst> {
        let type_name = self.type_path("a subject type")?;
        let kind = if self.at(TokenKind::Colon) {
            self.advance();
            self.expect(TokenKind::Star, &format!("`*` after `{}:`", type_name.text))?;
            TypeRefKind::Wildcard
        } else if self.at(TokenKind::Hash) {
            self.advance();
            if self.at(TokenKind::Ellipsis) {
                self.advance();
                TypeRefKind::Object
            } else {
                TypeRefKind::Relation(
                    self.name(&format!("a relation name after `{}#`", type_name.text))?,
                )
            }
        } else {
            TypeRefKind::Object
        };
        let mut caveat = None;
        let mut expiration = None;
        if self.at_word("with") {
            self.advance();
            if self.file.uses_expiration && self.at_word("expiration") {
                expiration = Some(self.advance().span);
            } else {
                caveat = Some(self.type_path("a caveat name after `with`")?);
                if self.file.uses_expiration && self.at_word("and") {
                    self.advance();
                    if self.at_word("expiration") {
                        expiration = Some(self.advance().span);
                    } else {
                        self.expected("`expiration` after `and`");
                        return None;
                    }
                }
            }
            if expiration.is_some() && self.at_word("and") {
                let span = self.span();
                self.error(
                    span,
                    "unexpected `and` after `expiration`: the caveat must come first, as in `with caveat_name and expiration`",
                );
                return None;
            }
        }
        Some(TypeRefAst {
            type_name,
            kind,
            caveat,
            expiration,
        })
    }

    fn permission(&mut self) -> Option<PermissionAst> {
        let keyword = self.advance();
        let name = self.name("a permission name after `permission`")?;
        let mut annotations = Vec::new();
        if self.at(TokenKind::Colon) {
            self.advance();
            annotations.push(self.name("a type name in the permission's type annotation")?);
            while self.at(TokenKind::Pipe) {
                self.advance();
                annotations.push(self.name("a type name after `|` in the type annotation")?);
            }
        }
        self.expect(
            TokenKind::Equals,
            &format!("`=` after `permission {}`", name.text),
        )?;
        let expr = self.exclusion(0)?;
        Some(PermissionAst {
            name,
            span: keyword.span,
            doc: keyword.doc,
            annotations,
            expr,
        })
    }

    // ---- permission expressions: `-` (loosest) < `&` < `+` (tightest) ----

    fn check_depth(&mut self, expr: Expr) -> Option<Expr> {
        if expr.depth > MAX_EXPR_DEPTH {
            self.error(
                expr.span,
                format!(
                    "permission expression is nested too deeply (more than {MAX_EXPR_DEPTH} levels)"
                ),
            );
            None
        } else {
            Some(expr)
        }
    }

    fn exclusion(&mut self, nesting: usize) -> Option<Expr> {
        let mut left = self.intersection(nesting)?;
        while self.at(TokenKind::Minus) {
            self.advance();
            let right = self.intersection(nesting)?;
            let span = left.span;
            left = self.check_depth(Expr::node(
                ExprKind::Exclusion(Box::new(left), Box::new(right)),
                span,
            ))?;
        }
        Some(left)
    }

    fn intersection(&mut self, nesting: usize) -> Option<Expr> {
        let first = self.union(nesting)?;
        if !self.at(TokenKind::Amp) {
            return Some(first);
        }
        let span = first.span;
        let mut items = vec![first];
        while self.at(TokenKind::Amp) {
            self.advance();
            items.push(self.union(nesting)?);
        }
        self.check_depth(Expr::node(ExprKind::Intersection(items), span))
    }

    fn union(&mut self, nesting: usize) -> Option<Expr> {
        let first = self.operand(nesting)?;
        if !self.at(TokenKind::Plus) {
            return Some(first);
        }
        let span = first.span;
        let mut items = vec![first];
        while self.at(TokenKind::Plus) {
            self.advance();
            items.push(self.operand(nesting)?);
        }
        self.check_depth(Expr::node(ExprKind::Union(items), span))
    }

    /// A name, an arrow, `nil`, or a parenthesized expression.
    fn operand(&mut self, nesting: usize) -> Option<Expr> {
        if self.at(TokenKind::LParen) {
            let open = self.span();
            if nesting >= MAX_NESTING {
                self.error(
                    open,
                    format!("permission expression is nested too deeply (more than {MAX_NESTING} levels of parentheses)"),
                );
                return None;
            }
            self.advance();
            let inner = self.exclusion(nesting + 1)?;
            self.expect(TokenKind::RParen, "`)` to close `(`")?;
            return Some(inner);
        }
        if self.at_word("nil") {
            let span = self.advance().span;
            return Some(Expr::leaf(ExprKind::Nil, span));
        }
        let what = "a relation or permission name, `nil` or `(`";
        let first = self.name(what)?;
        let mut expr = Expr::leaf(ExprKind::Identifier(first.clone()), first.span);
        loop {
            let kind = if self.at(TokenKind::Arrow) {
                self.advance();
                None
            } else if self.at(TokenKind::Period) {
                self.advance();
                let function = self.name("`any` or `all` after `.`")?;
                let kind = match function.text.as_str() {
                    "any" => ArrowKind::Any,
                    "all" => ArrowKind::All,
                    other => {
                        self.error(
                            function.span,
                            format!("expected `any` or `all` after `.`, found `{other}`"),
                        );
                        return None;
                    }
                };
                self.expect(
                    TokenKind::LParen,
                    &format!("`(` after `.{}`", function.text),
                )?;
                Some(kind)
            } else {
                break;
            };
            let computed = self.name("a relation or permission name after the arrow")?;
            if kind.is_some() {
                self.expect(TokenKind::RParen, "`)` to close the arrow function")?;
            }
            if !matches!(expr.kind, ExprKind::Identifier(_)) {
                self.error(first.span, "nested arrows (`a->b->c`) are not supported");
                return None;
            }
            expr = Expr::leaf(
                ExprKind::Arrow {
                    tupleset: first.clone(),
                    computed,
                    kind: kind.unwrap_or(ArrowKind::Any),
                },
                first.span,
            );
        }
        Some(expr)
    }

    // ---- caveats ----

    fn caveat(&mut self) {
        let keyword = self.advance();
        self.seen_item = true;
        let Some(name) = self.type_path("a caveat name") else {
            self.recover_top(true);
            return;
        };
        match self.caveat_rest(&name, keyword.span) {
            Some(caveat) => self.file.caveats.push(caveat),
            None => {
                self.file.broken_names.push(name.text);
                self.recover_top(false);
            }
        }
    }

    fn caveat_rest(&mut self, name: &Ident, span: Span) -> Option<CaveatAst> {
        self.expect(
            TokenKind::LParen,
            &format!("`(` after `caveat {}`", name.text),
        )?;
        if self.at(TokenKind::RParen) {
            let at = self.span();
            self.error(
                at,
                format!("caveat `{}` must have at least one parameter", name.text),
            );
            return None;
        }
        let mut params = Vec::new();
        loop {
            let param_name = self.name("a parameter name")?;
            let ty = self.caveat_type(0)?;
            params.push(ParamAst {
                name: param_name,
                ty,
            });
            if self.at(TokenKind::Comma) {
                self.advance();
            } else {
                break;
            }
        }
        self.expect(TokenKind::RParen, "`,` or `)` after the caveat parameter")?;
        let open = self.expect(TokenKind::LBrace, "`{` to open the caveat expression")?;

        // CEL is its own language: take the text up to the matching `}`.
        let mut depth = 1usize;
        let mut first: Option<Token> = None;
        let mut last: Option<Token> = None;
        loop {
            match self.kind() {
                TokenKind::Eof => {
                    self.error(
                        open.span,
                        format!(
                            "the expression of caveat `{}` is not closed: expected `}}`",
                            name.text
                        ),
                    );
                    return None;
                }
                TokenKind::Unknown => {
                    // As SpiceDB's lexer: such a character is an error anywhere.
                    let message = format!(
                        "unexpected character {} in the expression of caveat `{}`",
                        show_char(self.text()),
                        name.text
                    );
                    let span = self.span();
                    self.error(span, message);
                    return None;
                }
                TokenKind::LBrace => depth += 1,
                TokenKind::RBrace => {
                    if depth == 1 {
                        break;
                    }
                    depth -= 1;
                }
                _ => {}
            }
            let tok = self.advance();
            if tok.kind != TokenKind::SyntheticSemicolon {
                if first.is_none() {
                    first = Some(tok.clone());
                }
                last = Some(tok);
            }
        }
        let close = self.advance();
        let (Some(first), Some(last)) = (first, last) else {
            self.error(
                close.span,
                format!("caveat `{}` has an empty expression", name.text),
            );
            return None;
        };
        let expression = self
            .source
            .get(first.start..last.end)
            .unwrap_or("")
            .to_string();
        Some(CaveatAst {
            name: name.clone(),
            span,
            params,
            expression,
            expression_span: first.span,
        })
    }

    /// `name` or `name<type, ...>`.
    fn caveat_type(&mut self, nesting: usize) -> Option<TypeAst> {
        let name = self.name("a parameter type")?;
        let mut args = Vec::new();
        if self.at(TokenKind::Lt) {
            if nesting >= MAX_NESTING {
                let span = self.span();
                self.error(span, format!("caveat parameter type is nested too deeply (more than {MAX_NESTING} levels)"));
                return None;
            }
            self.advance();
            loop {
                args.push(self.caveat_type(nesting + 1)?);
                if self.at(TokenKind::Comma) {
                    self.advance();
                } else {
                    break;
                }
            }
            self.expect(TokenKind::Gt, &format!("`>` to close `{}<`", name.text))?;
        }
        Some(TypeAst { name, args })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(source: &str) -> File {
        let (file, errors) = parse(source);
        assert!(errors.is_empty(), "unexpected errors: {errors:?}");
        file
    }

    fn errors(source: &str) -> Vec<String> {
        parse(source)
            .1
            .iter()
            .map(|e| format!("{}: {}", e.span, e.message))
            .collect()
    }

    /// Prints an expression compactly: `+`, `&`, `-` with parentheses around every node.
    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Union(items) => format!(
                "({})",
                items.iter().map(show).collect::<Vec<_>>().join(" + ")
            ),
            ExprKind::Intersection(items) => {
                format!(
                    "({})",
                    items.iter().map(show).collect::<Vec<_>>().join(" & ")
                )
            }
            ExprKind::Exclusion(a, b) => format!("({} - {})", show(a), show(b)),
            ExprKind::Identifier(i) => i.text.clone(),
            ExprKind::Arrow {
                tupleset,
                computed,
                kind,
            } => match kind {
                ArrowKind::Any => format!("{}->{}", tupleset.text, computed.text),
                ArrowKind::All => format!("{}.all({})", tupleset.text, computed.text),
            },
            ExprKind::Nil => "nil".to_string(),
        }
    }

    fn expr(text: &str) -> String {
        let file = parse_ok(&format!("definition d {{\n permission p = {text}\n}}"));
        match file.definitions.first().and_then(|d| d.members.first()) {
            Some(Member::Permission(p)) => show(&p.expr),
            other => panic!("no permission: {other:?}"),
        }
    }

    #[test]
    fn precedence_plus_binds_tightest_then_and_then_minus() {
        assert_eq!(expr("a + b + c"), "(a + b + c)");
        assert_eq!(expr("a & b & c"), "(a & b & c)");
        assert_eq!(expr("a - b - c"), "((a - b) - c)");
        // SpiceDB's associativity.zed: `a + b - c` is `(a + b) - c`, `a - b + c` is `a - (b + c)`.
        assert_eq!(expr("a + b - c"), "((a + b) - c)");
        assert_eq!(expr("a - b + c"), "(a - (b + c))");
        assert_eq!(expr("a & b + c"), "(a & (b + c))");
        assert_eq!(expr("a + b & c"), "((a + b) & c)");
        assert_eq!(expr("a - b & c"), "(a - (b & c))");
        assert_eq!(expr("a & b - c"), "((a & b) - c)");
        assert_eq!(expr("(a - b) + c"), "((a - b) + c)");
        assert_eq!(
            expr("a + parent->view - banned"),
            "((a + parent->view) - banned)"
        );
        assert_eq!(
            expr("parent.all(view) & p.any(x)"),
            "(parent.all(view) & p->x)"
        );
        assert_eq!(expr("nil"), "nil");
        assert_eq!(
            expr("(a + b + nil) - c - nil"),
            "(((a + b + nil) - c) - nil)"
        );
        assert_eq!(expr("a +\n b"), "(a + b)");
    }

    #[test]
    fn every_subject_type_form() {
        let file = parse_ok(
            "use expiration\ndefinition doc {\n relation r: user | team#member | user:* | user#... | a/b/c \
             | user with cav | user:* with p/cav | user with expiration | team#member with cav and expiration\n}",
        );
        let Some(Member::Relation(r)) = file.definitions.first().and_then(|d| d.members.first())
        else {
            panic!("no relation");
        };
        let shown: Vec<String> = r
            .types
            .iter()
            .map(|t| {
                let kind = match &t.kind {
                    TypeRefKind::Object => String::new(),
                    TypeRefKind::Wildcard => ":*".to_string(),
                    TypeRefKind::Relation(rel) => format!("#{}", rel.text),
                };
                let caveat = t
                    .caveat
                    .as_ref()
                    .map(|c| format!(" c={}", c.text))
                    .unwrap_or_default();
                let exp = if t.expiration.is_some() { " exp" } else { "" };
                format!("{}{kind}{caveat}{exp}", t.type_name.text)
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                "user",
                "team#member",
                "user:*",
                "user",
                "a/b/c",
                "user c=cav",
                "user:* c=p/cav",
                "user exp",
                "team#member c=cav exp"
            ]
        );
        assert!(file.uses_expiration);
    }

    #[test]
    fn without_use_expiration_expiration_is_a_caveat_name() {
        let file = parse_ok("definition doc {\n relation r: user with expiration\n}");
        let Some(Member::Relation(r)) = file.definitions.first().and_then(|d| d.members.first())
        else {
            panic!("no relation");
        };
        let t = r.types.first().unwrap();
        assert_eq!(
            t.caveat.as_ref().map(|c| c.text.as_str()),
            Some("expiration")
        );
        assert!(t.expiration.is_none());
        let errs = errors("definition doc {\n relation r: user with cav and expiration\n}");
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("2:28:") && errs[0].contains("use expiration"),
            "{errs:?}"
        );
    }

    #[test]
    fn doc_comments_on_definitions_and_relations() {
        let file = parse_ok(
            "/** the user */\ndefinition user {}\n\n/**\n * a doc\n */\ndefinition doc {\n  // plain comment\n  /** who reads */\n  relation reader: user\n  permission view = reader\n}",
        );
        let user = file.definitions.first().unwrap();
        assert_eq!(user.doc.as_deref(), Some("the user"));
        let doc = file.definitions.get(1).unwrap();
        assert_eq!(doc.doc.as_deref(), Some("a doc"));
        let Some(Member::Relation(r)) = doc.members.first() else {
            panic!()
        };
        assert_eq!(r.doc.as_deref(), Some("who reads"));
        let Some(Member::Permission(p)) = doc.members.get(1) else {
            panic!()
        };
        assert_eq!(p.doc, None);
    }

    #[test]
    fn caveat_expression_text_and_span() {
        let src = "caveat c(a int, b map<list<string>>, s string) {\n  a == 1 && {'k': \"}\"}['k'] == s &&\n  b.size() > 0\n}\ndefinition user {}";
        let file = parse_ok(src);
        let c = file.caveats.first().unwrap();
        assert_eq!(c.name.text, "c");
        assert_eq!(
            c.expression,
            "a == 1 && {'k': \"}\"}['k'] == s &&\n  b.size() > 0"
        );
        assert_eq!(c.expression_span.to_string(), "2:3");
        assert_eq!(c.params.len(), 3);
        let b = c.params.get(1).unwrap();
        assert_eq!(b.ty.name.text, "map");
        assert_eq!(
            b.ty.args.first().map(|t| t.name.text.as_str()),
            Some("list")
        );
        assert_eq!(file.definitions.len(), 1);
    }

    #[test]
    fn statement_terminators_follow_spicedb() {
        parse_ok("definition a {}definition b {}");
        parse_ok("definition a {};\ndefinition b { relation x: a; permission y = x; }");
        parse_ok("definition a {\n\n}\n\n\n");
        parse_ok("");
        // SpiceDB needs a new line or `;` before the closing brace.
        let errs = errors("definition a { relation x: a }");
        assert_eq!(
            errs,
            vec!["1:30: expected a new line or `;` after the relation, found `}`"]
        );
        let errs = errors("definition foo {\n\trelation something: rela | relb + relc\n}");
        assert_eq!(
            errs,
            vec!["2:34: expected a new line or `;` after the relation, found `+`"]
        );
    }

    #[test]
    fn syntax_errors_are_all_reported_with_positions() {
        let src = "definition a {\n  relation: user\n  permission p = \n  relation ok: user\n}\nnonsense here\ndefinition b {\n  permission q = x->y->z\n  permission r = x.foo(y)\n}\ncaveat c() { true }\n";
        let errs = errors(src);
        assert_eq!(
            errs,
            vec![
                "2:11: expected a relation name after `relation`, found `:`",
                "4:3: expected a relation or permission name, `nil` or `(`, found keyword `relation`",
                "6:1: expected `definition`, `caveat` or `use`, found `nonsense`",
                "8:18: nested arrows (`a->b->c`) are not supported",
                "9:20: expected `any` or `all` after `.`, found `foo`",
                "11:10: caveat `c` must have at least one parameter",
            ]
        );
        let (file, _) = parse(src);
        let a = file.definitions.first().unwrap();
        assert!(a.had_errors);
        assert_eq!(a.members.len(), 1);
    }

    #[test]
    fn use_flags() {
        assert!(parse_ok("use expiration\nuse expiration\ndefinition a {}").uses_expiration);
        parse_ok("use typechecking\ndefinition a {}");
        assert_eq!(
            errors("definition a {}\nuse expiration"),
            vec!["2:1: `use` must come before any definition or caveat"]
        );
        assert_eq!(
            errors("use something"),
            vec![
                "1:5: unknown use flag `something`; options are: `expiration`, `import`, `partial`, `self`, `typechecking`"
            ]
        );
        assert_eq!(
            errors("use self"),
            vec!["1:5: `use self` is not supported by arbor"]
        );
        let errs =
            errors("use expiration\ndefinition a {\n relation r: user with expiration and cav\n}");
        assert!(
            errs.first()
                .is_some_and(|e| e.starts_with("3:35: unexpected `and`")),
            "{errs:?}"
        );
        let errs = errors("use expiration\ncaveat expiration(a int) { a }");
        assert!(
            errs.first()
                .is_some_and(|e| e.contains("found keyword `expiration`")),
            "{errs:?}"
        );
    }

    #[test]
    fn keywords_are_not_names() {
        let errs = errors("definition a {\n relation nil: user\n}");
        assert_eq!(
            errs,
            vec!["2:11: expected a relation name after `relation`, found keyword `nil`"]
        );
    }

    #[test]
    fn unterminated_things() {
        let errs = errors("definition a {\n relation r: user\n");
        assert_eq!(
            errs,
            vec!["3:1: expected `}` to close definition `a`, found the end of the schema"]
        );
        let errs = errors("caveat c(a int) {\n a == 1\n\ndefinition user {}");
        assert_eq!(
            errs,
            vec!["1:17: the expression of caveat `c` is not closed: expected `}`"]
        );
        let errs = errors("caveat c(a int) {\n  a == 42 `\n}");
        assert_eq!(
            errs,
            vec!["2:11: unexpected character U+0060 in the expression of caveat `c`"]
        );
        let errs = errors("definition a {\n relation r: @user\n}");
        assert_eq!(
            errs,
            vec!["2:14: expected a subject type, found the character `@`"]
        );
        let errs = errors("caveat c(a int) {\n}");
        assert_eq!(errs, vec!["2:1: caveat `c` has an empty expression"]);
        let errs = errors("definition a {\n relation r: user:\n}");
        assert_eq!(errs, vec!["3:1: expected `*` after `user:`, found `}`"]);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            "definition a {{\n permission p = {}x{}\n}}",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        let errs = errors(&deep);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("nested too deeply"));
        let ok = format!(
            "definition a {{\n permission p = {}x{}\n}}",
            "(".repeat(100),
            ")".repeat(100)
        );
        parse_ok(&ok);
        let chain = format!(
            "definition a {{\n permission p = x{}\n}}",
            " - y".repeat(5000)
        );
        assert!(
            errors(&chain)
                .iter()
                .any(|e| e.contains("nested too deeply"))
        );
        let ty = format!(
            "caveat c(a {}int{}) {{ a }}",
            "list<".repeat(500),
            ">".repeat(500)
        );
        assert!(errors(&ty).iter().any(|e| e.contains("nested too deeply")));
    }
}
