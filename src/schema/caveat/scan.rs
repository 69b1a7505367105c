//! A lexical pre-scan of caveat expressions: bounds how deeply the CEL parser will recurse
//! before the text is handed to it. The `cel` crate's parser (ANTLR-generated, recursive
//! descent with left-recursive rules) recurses once per bracket level and once per operator
//! of a left-associative chain (`a + b + c`, `x.y.z`, `l[0][1]`), and only some of its rules
//! have a recursion limit; without this bound a short expression could overflow the stack.

/// Parse depth charged for each bracket level (a parenthesized sub-expression goes through
/// every precedence rule of the grammar again) and for each `?` (right-recursive).
const LEVEL_COST: u32 = 4;

/// How one bracket level (or the top level) is being parsed.
struct Level {
    /// Depth charged for entering this level (and for each `?` in it).
    base: u32,
    /// Operators of the current left-recursive chain at this level.
    chain: u32,
}

/// Where the estimated parse depth first exceeds `max`: the character offset in
/// `expression`. `None` when it never does.
pub(super) fn too_deep(expression: &str, max: u32) -> Option<usize> {
    let chars: Vec<char> = expression.chars().collect();
    let mut levels = vec![Level { base: 0, chain: 0 }];
    let mut i = 0usize;
    while let Some(&c) = chars.get(i) {
        let next = chars.get(i + 1).copied();
        match c {
            '"' | '\'' => {
                i = skip_string(&chars, i);
                continue;
            }
            '/' if next == Some('/') => {
                while chars.get(i).is_some_and(|&c| c != '\n') {
                    i += 1;
                }
                continue;
            }
            '(' | '[' | '{' => {
                if let Some(top) = levels.last_mut() {
                    top.chain = top.chain.saturating_add(1);
                }
                levels.push(Level {
                    base: LEVEL_COST,
                    chain: 0,
                });
            }
            ')' | ']' | '}' if levels.len() > 1 => {
                levels.pop();
            }
            '|' | '&' | ',' | ':' => {
                if let Some(top) = levels.last_mut() {
                    top.chain = 0;
                }
            }
            '?' => {
                if let Some(top) = levels.last_mut() {
                    top.base = top.base.saturating_add(LEVEL_COST);
                    top.chain = 0;
                }
            }
            '+' | '-' | '*' | '/' | '%' | '<' | '>' | '=' | '!' | '.' => {
                // `==`, `<=`, `!=` are one operator; `!x`, `-x` (unary) are loops in the
                // grammar but counting them errs on the safe side.
                let doubled = next == Some('=') && matches!(c, '<' | '>' | '=' | '!');
                if let Some(top) = levels.last_mut() {
                    top.chain = top.chain.saturating_add(1);
                }
                if doubled {
                    i += 1;
                }
            }
            _ if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|&c| c.is_alphanumeric() || c == '_')
                {
                    i += 1;
                }
                let word: String = chars.get(start..i).unwrap_or_default().iter().collect();
                // A string prefix: `r"..."`, `b'...'`, `rb"..."`.
                if chars.get(i).is_some_and(|&c| c == '"' || c == '\'')
                    && matches!(word.to_ascii_lowercase().as_str(), "r" | "b" | "rb" | "br")
                {
                    let raw = word.to_ascii_lowercase().contains('r');
                    i = if raw {
                        skip_raw_string(&chars, i)
                    } else {
                        skip_string(&chars, i)
                    };
                    continue;
                }
                if word == "in"
                    && let Some(top) = levels.last_mut()
                {
                    top.chain = top.chain.saturating_add(1);
                }
                continue;
            }
            _ => {}
        }
        let depth: u32 = levels
            .iter()
            .map(|l| l.base.saturating_add(l.chain))
            .fold(0u32, u32::saturating_add);
        if depth > max {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The index after the string literal starting at `start` (escapes honoured; triple quotes).
fn skip_string(chars: &[char], start: usize) -> usize {
    let Some(&quote) = chars.get(start) else {
        return start + 1;
    };
    let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
    let mut i = if triple { start + 3 } else { start + 1 };
    while let Some(&c) = chars.get(i) {
        if c == '\\' {
            i += 2;
            continue;
        }
        if c == quote {
            if !triple {
                return i + 1;
            }
            if chars.get(i + 1) == Some(&quote) && chars.get(i + 2) == Some(&quote) {
                return i + 3;
            }
        }
        if c == '\n' && !triple {
            return i;
        }
        i += 1;
    }
    i
}

/// The index after the raw string literal starting at `start` (no escapes).
fn skip_raw_string(chars: &[char], start: usize) -> usize {
    let Some(&quote) = chars.get(start) else {
        return start + 1;
    };
    let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
    let mut i = if triple { start + 3 } else { start + 1 };
    while let Some(&c) = chars.get(i) {
        if c == quote {
            if !triple {
                return i + 1;
            }
            if chars.get(i + 1) == Some(&quote) && chars.get(i + 2) == Some(&quote) {
                return i + 3;
            }
        }
        if c == '\n' && !triple {
            return i;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_logic_is_cheap_chains_and_brackets_are_not() {
        let ors = vec!["a == 1"; 500].join(" || ");
        assert_eq!(too_deep(&ors, 64), None);
        let plus = format!("a{}", " + a".repeat(100));
        assert!(too_deep(&plus, 64).is_some());
        let parens = format!("{}a{}", "(".repeat(20), ")".repeat(20));
        assert!(too_deep(&parens, 64).is_some());
        assert_eq!(too_deep("((a + b) * c) == d", 64), None);
    }

    #[test]
    fn strings_and_comments_do_not_count() {
        let inside = format!("'{}' == s // {}\n", "(".repeat(500), "[".repeat(500));
        assert_eq!(too_deep(&inside, 16), None);
        let raw = format!("r\"{}\\\" == s", "(".repeat(500));
        assert_eq!(too_deep(&raw, 16), None);
        let triple = format!("'''{}\n''' == s", "(".repeat(500));
        assert_eq!(too_deep(&triple, 16), None);
    }

    #[test]
    fn reports_the_offset_where_it_gets_too_deep() {
        assert_eq!(too_deep("((((a))))", 9), Some(1));
    }
}
