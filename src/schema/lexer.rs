//! The schema lexer: turns schema text into tokens with spans, inserting SpiceDB's
//! synthetic semicolons at newlines and attaching `/** doc */` comments to the next token.

use super::compiled::Span;
use super::error::SchemaError;

/// What a token is. Keywords are identifiers; the parser decides which words are reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// Letters, digits and `_` (digits may lead, as in SpiceDB).
    Ident,
    /// A quoted string (only meaningful inside caveat expressions).
    Str,
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// `|`
    Pipe,
    /// `||`
    OrOr,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `->`
    Arrow,
    /// `&`
    Amp,
    /// `&&`
    AndAnd,
    /// `/`
    Slash,
    /// `=`
    Equals,
    /// `==`
    EqEq,
    /// `!=`
    NotEq,
    /// `!`
    Bang,
    /// `:`
    Colon,
    /// `;`
    Semicolon,
    /// A newline after a token that can end a statement.
    SyntheticSemicolon,
    /// `#`
    Hash,
    /// `...`
    Ellipsis,
    /// `.`
    Period,
    /// `*`
    Star,
    /// `,`
    Comma,
    /// `?`
    Question,
    /// `%`
    Percent,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// A character the schema language does not use (allowed only inside caveat expressions).
    Unknown,
    /// The end of the text.
    Eof,
}

/// One token: its kind, where it is (bytes and line:column), and any doc comment before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    /// Byte offset of the first character.
    pub(crate) start: usize,
    /// Byte offset just past the last character.
    pub(crate) end: usize,
    /// Line and column of the first character.
    pub(crate) span: Span,
    /// The `/** ... */` comments between the previous token and this one, normalized.
    pub(crate) doc: Option<String>,
}

impl Token {
    /// The token's text in `source`.
    pub(crate) fn text<'a>(&self, source: &'a str) -> &'a str {
        source.get(self.start..self.end).unwrap_or("")
    }
}

/// Tokens (always ending with `Eof`) and the lexical errors found.
pub(crate) struct Lexed {
    pub(crate) tokens: Vec<Token>,
    pub(crate) errors: Vec<SchemaError>,
}

/// Splits `source` into tokens. Never fails: problems become errors and lexing goes on
/// (an unterminated block comment ends the text).
pub(crate) fn lex(source: &str) -> Lexed {
    let mut lexer = Lexer {
        source,
        pos: 0,
        line: 1,
        column: 1,
        tokens: Vec::new(),
        errors: Vec::new(),
        pending_doc: Vec::new(),
        last_significant: None,
    };
    // A byte-order mark is not part of the schema.
    if source.starts_with('\u{feff}') {
        lexer.pos = '\u{feff}'.len_utf8();
    }
    lexer.run();
    Lexed {
        tokens: lexer.tokens,
        errors: lexer.errors,
    }
}

/// What came last, for deciding whether a newline ends a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Token(TokenKind),
    Newline,
}

struct Lexer<'a> {
    source: &'a str,
    pos: usize,
    line: u32,
    column: u32,
    tokens: Vec<Token>,
    errors: Vec<SchemaError>,
    pending_doc: Vec<String>,
    last_significant: Option<Last>,
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        self.source.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn span(&self) -> Span {
        Span {
            line: self.line,
            column: self.column,
        }
    }

    /// Moves past one character, keeping line and column.
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.column = 1;
        } else if c == '\r' {
            // `\r\n` counts as one line break; a lone `\r` as one too.
            if self.peek() == Some('\n') {
                self.column = self.column.saturating_add(1);
            } else {
                self.line = self.line.saturating_add(1);
                self.column = 1;
            }
        } else {
            self.column = self.column.saturating_add(1);
        }
        Some(c)
    }

    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.errors.push(SchemaError {
            span,
            message: message.into(),
        });
    }

    fn push(&mut self, kind: TokenKind, start: usize, span: Span) {
        let doc = if self.pending_doc.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.pending_doc).join("\n"))
        };
        self.tokens.push(Token {
            kind,
            start,
            end: self.pos,
            span,
            doc,
        });
        self.last_significant = Some(Last::Token(kind));
    }

    /// Consumes `n` characters and pushes a token of `kind` covering them.
    fn single(&mut self, kind: TokenKind, n: usize) {
        let start = self.pos;
        let span = self.span();
        for _ in 0..n {
            self.bump();
        }
        self.push(kind, start, span);
    }

    fn run(&mut self) {
        while let Some(c) = self.peek() {
            let next = self.peek_second();
            match c {
                ' ' | '\t' => {
                    self.bump();
                }
                '\n' | '\r' => {
                    let start = self.pos;
                    let span = self.span();
                    self.bump();
                    let ends_statement = matches!(
                        self.last_significant,
                        Some(Last::Token(
                            TokenKind::Ident
                                | TokenKind::RBrace
                                | TokenKind::RParen
                                | TokenKind::Star
                        ))
                    );
                    if ends_statement {
                        // A doc comment before the newline stays with the next real token.
                        let doc = std::mem::take(&mut self.pending_doc);
                        self.push(TokenKind::SyntheticSemicolon, start, span);
                        self.pending_doc = doc;
                    }
                    self.last_significant = Some(Last::Newline);
                }
                '/' if next == Some('/') => self.line_comment(),
                '/' if next == Some('*') => self.block_comment(),
                '{' => self.single(TokenKind::LBrace, 1),
                '}' => self.single(TokenKind::RBrace, 1),
                '(' => self.single(TokenKind::LParen, 1),
                ')' => self.single(TokenKind::RParen, 1),
                '[' => self.single(TokenKind::LBracket, 1),
                ']' => self.single(TokenKind::RBracket, 1),
                '+' => self.single(TokenKind::Plus, 1),
                '|' if next == Some('|') => self.single(TokenKind::OrOr, 2),
                '|' => self.single(TokenKind::Pipe, 1),
                '&' if next == Some('&') => self.single(TokenKind::AndAnd, 2),
                '&' => self.single(TokenKind::Amp, 1),
                '-' if next == Some('>') => self.single(TokenKind::Arrow, 2),
                '-' => self.single(TokenKind::Minus, 1),
                '/' => self.single(TokenKind::Slash, 1),
                '=' if next == Some('=') => self.single(TokenKind::EqEq, 2),
                '=' => self.single(TokenKind::Equals, 1),
                '!' if next == Some('=') => self.single(TokenKind::NotEq, 2),
                '!' => self.single(TokenKind::Bang, 1),
                '<' if next == Some('=') => self.single(TokenKind::Le, 2),
                '<' => self.single(TokenKind::Lt, 1),
                '>' if next == Some('=') => self.single(TokenKind::Ge, 2),
                '>' => self.single(TokenKind::Gt, 1),
                ':' => self.single(TokenKind::Colon, 1),
                ';' => self.single(TokenKind::Semicolon, 1),
                '#' => self.single(TokenKind::Hash, 1),
                '*' => self.single(TokenKind::Star, 1),
                ',' => self.single(TokenKind::Comma, 1),
                '?' => self.single(TokenKind::Question, 1),
                '%' => self.single(TokenKind::Percent, 1),
                '.' if self.rest().starts_with("...") => self.single(TokenKind::Ellipsis, 3),
                '.' => self.single(TokenKind::Period, 1),
                '"' | '\'' => self.string(false),
                c if is_ident_char(c) => self.ident(),
                _ => self.single(TokenKind::Unknown, 1),
            }
        }
        let span = self.span();
        self.pending_doc.clear();
        self.push(TokenKind::Eof, self.pos, span);
    }

    fn ident(&mut self) {
        let start = self.pos;
        let span = self.span();
        while self.peek().is_some_and(is_ident_char) {
            self.bump();
        }
        self.push(TokenKind::Ident, start, span);
        // CEL raw-string prefixes (`r"..."`, `br'...'`): the string that follows has no escapes.
        if matches!(self.peek(), Some('"' | '\'')) {
            let word = self.source.get(start..self.pos).unwrap_or("");
            if word.eq_ignore_ascii_case("r")
                || word.eq_ignore_ascii_case("br")
                || word.eq_ignore_ascii_case("rb")
            {
                self.string(true);
            }
        }
    }

    /// A string: `"..."`, `'...'`, or triple-quoted `"""..."""` / `'''...'''` (which may span lines).
    fn string(&mut self, raw: bool) {
        let start = self.pos;
        let span = self.span();
        let rest = self.rest();
        let (quote, triple) = if rest.starts_with("\"\"\"") {
            ("\"\"\"", true)
        } else if rest.starts_with("'''") {
            ("'''", true)
        } else if rest.starts_with('"') {
            ("\"", false)
        } else {
            ("'", false)
        };
        for _ in 0..quote.len() {
            self.bump();
        }
        loop {
            if self.rest().starts_with(quote) {
                for _ in 0..quote.len() {
                    self.bump();
                }
                break;
            }
            match self.peek() {
                None => {
                    self.error(span, "unterminated string");
                    break;
                }
                Some('\n' | '\r') if !triple => {
                    self.error(span, "unterminated string");
                    break;
                }
                Some('\\') if !raw => {
                    self.bump();
                    // The escaped character, whatever it is, cannot end the string
                    // (a newline still does, for single-line strings).
                    if !triple && matches!(self.peek(), Some('\n' | '\r')) {
                        continue;
                    }
                    self.bump();
                }
                Some(_) => {
                    self.bump();
                }
            }
        }
        self.push(TokenKind::Str, start, span);
    }

    fn line_comment(&mut self) {
        while self.peek().is_some_and(|c| c != '\n' && c != '\r') {
            self.bump();
        }
    }

    fn block_comment(&mut self) {
        let start = self.pos;
        let span = self.span();
        self.bump();
        self.bump();
        loop {
            if self.rest().starts_with("*/") {
                self.bump();
                self.bump();
                break;
            }
            if self.bump().is_none() {
                self.error(span, "unterminated comment: expected `*/`");
                return;
            }
        }
        let text = self.source.get(start..self.pos).unwrap_or("");
        if let Some(doc) = doc_text(text) {
            self.pending_doc.push(doc);
        }
    }
}

/// The text of a `/** ... */` comment without its markers and leading `*`s; `None` for other comments.
fn doc_text(comment: &str) -> Option<String> {
    let inner = comment.strip_prefix("/**")?.strip_suffix("*/")?;
    if comment == "/**/" {
        return None;
    }
    let lines: Vec<&str> = inner
        .lines()
        .map(|line| {
            let line = line.trim();
            let line = line.strip_prefix('*').unwrap_or(line);
            line.strip_prefix(' ').unwrap_or(line).trim_end()
        })
        .collect();
    let first = lines.iter().position(|l| !l.is_empty())?;
    let last = lines.iter().rposition(|l| !l.is_empty()).unwrap_or(first);
    Some(lines.get(first..=last).unwrap_or(&[]).join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<TokenKind> {
        lex(source).tokens.iter().map(|t| t.kind).collect()
    }

    #[test]
    fn punctuation_and_operators() {
        use TokenKind::*;
        assert_eq!(
            kinds("{ } ( ) | + - -> & / = : ; # ... . * , == != <= >= && || ! ? %"),
            vec![
                LBrace, RBrace, LParen, RParen, Pipe, Plus, Minus, Arrow, Amp, Slash, Equals,
                Colon, Semicolon, Hash, Ellipsis, Period, Star, Comma, EqEq, NotEq, Le, Ge, AndAnd,
                OrOr, Bang, Question, Percent, Eof
            ]
        );
    }

    #[test]
    fn synthetic_semicolons_follow_statement_ends_only() {
        use TokenKind::*;
        assert_eq!(kinds("a\nb"), vec![Ident, SyntheticSemicolon, Ident, Eof]);
        assert_eq!(kinds("a +\nb"), vec![Ident, Plus, Ident, Eof]);
        assert_eq!(
            kinds("{\n}\n"),
            vec![LBrace, RBrace, SyntheticSemicolon, Eof]
        );
        assert_eq!(
            kinds("user:*\n\n\n"),
            vec![Ident, Colon, Star, SyntheticSemicolon, Eof]
        );
        assert_eq!(
            kinds("a // c\nb"),
            vec![Ident, SyntheticSemicolon, Ident, Eof]
        );
        assert_eq!(kinds("a\r\nb"), vec![Ident, SyntheticSemicolon, Ident, Eof]);
    }

    #[test]
    fn spans_are_line_and_column() {
        let lexed = lex("ab\n  cd\r\n\tx");
        let spans: Vec<String> = lexed.tokens.iter().map(|t| t.span.to_string()).collect();
        assert_eq!(spans, vec!["1:1", "1:3", "2:3", "2:5", "3:2", "3:3"]);
        let lexed = lex("é x");
        assert_eq!(lexed.tokens.get(1).map(|t| t.span.column), Some(3));
    }

    #[test]
    fn strings_with_braces_escapes_and_triple_quotes() {
        let src = r#"a == "}\"{" || b == '}' || c == """x
}""" || d == r"\" || e"#;
        let lexed = lex(src);
        assert!(lexed.errors.is_empty(), "{:?}", lexed.errors);
        let strings: Vec<&str> = lexed
            .tokens
            .iter()
            .filter(|t| t.kind == TokenKind::Str)
            .map(|t| t.text(src))
            .collect();
        assert_eq!(
            strings,
            vec![r#""}\"{""#, "'}'", "\"\"\"x\n}\"\"\"", r#""\""#]
        );
        assert!(!lex("\"abc\ndef").errors.is_empty());
        assert!(!lex("'abc").errors.is_empty());
    }

    #[test]
    fn doc_comments_attach_to_next_token() {
        let src = "/**\n * first line\n *   indented\n */\ndefinition x {}\n// plain\n/* block */ definition y {}";
        let lexed = lex(src);
        let docs: Vec<Option<&str>> = lexed.tokens.iter().map(|t| t.doc.as_deref()).collect();
        assert_eq!(
            docs.first().copied().flatten(),
            Some("first line\n  indented")
        );
        assert!(docs.iter().skip(1).all(|d| d.is_none()));
        assert_eq!(doc_text("/** one */").as_deref(), Some("one"));
        assert_eq!(doc_text("/**/"), None);
        assert_eq!(doc_text("/* not doc */"), None);
    }

    #[test]
    fn unterminated_comment_is_an_error_at_its_start() {
        let lexed = lex("definition x {}\n  /* never closed");
        assert_eq!(
            lexed.errors.first().map(|e| e.span.to_string()).as_deref(),
            Some("2:3")
        );
        assert_eq!(lexed.tokens.last().map(|t| t.kind), Some(TokenKind::Eof));
    }

    #[test]
    fn unknown_characters_become_tokens() {
        assert_eq!(kinds("@"), vec![TokenKind::Unknown, TokenKind::Eof]);
        assert_eq!(kinds("\u{feff}a"), vec![TokenKind::Ident, TokenKind::Eof]);
    }
}
