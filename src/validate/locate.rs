//! Finding where a decoded YAML value came from in the raw file text (lines and columns).
//!
//! `serde_yaml` gives positions only for syntax and type errors, so the positions of
//! blocks, list items and the lines of multi-line scalars are found by searching the raw
//! text, moving forward monotonically so repeated text is attributed to the right line.

use std::fmt;

/// A 1-based line and column (in characters) in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Position {
    /// A position from a 1-based line and column.
    pub const fn new(line: usize, column: usize) -> Self {
        Position { line, column }
    }

    /// The same line, `columns` characters further right.
    pub fn shifted(self, columns: usize) -> Self {
        Position {
            line: self.line,
            column: self.column.saturating_add(columns),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The raw text of a file, split into lines.
pub(crate) struct RawText<'a> {
    lines: Vec<&'a str>,
}

/// Number of characters in `s`.
fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Character count of the leading whitespace of `s`.
fn indent(s: &str) -> usize {
    chars(s) - chars(s.trim_start())
}

/// One piece of a decoded scalar line that comes from one raw line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    /// 0-based character index in the decoded line where the piece starts.
    decoded_start: usize,
    /// 0-based raw line index.
    raw_line: usize,
    /// 0-based character index in the raw line matching `decoded_start`.
    raw_start: usize,
}

/// Where each line of a decoded multi-line scalar is in the raw text.
#[derive(Debug, Clone, Default)]
pub(crate) struct LineMap {
    /// Per decoded line: the raw pieces it was found in (empty when not found).
    lines: Vec<Vec<Segment>>,
    /// Used when a line was not found: where the scalar's value starts.
    fallback: Option<Position>,
}

impl LineMap {
    /// The file position of the 1-based `column` of the 1-based decoded `line`.
    pub(crate) fn position(&self, line: usize, column: usize) -> Option<Position> {
        let segments = line.checked_sub(1).and_then(|l| self.lines.get(l));
        let Some(segments) = segments.filter(|s| !s.is_empty()) else {
            return self.fallback;
        };
        let col0 = column.saturating_sub(1);
        let seg = segments
            .iter()
            .rev()
            .find(|s| s.decoded_start <= col0)
            .or(segments.first())?;
        let raw_col = (seg.raw_start + col0).saturating_sub(seg.decoded_start);
        Some(Position::new(seg.raw_line + 1, raw_col + 1))
    }

    /// Where the scalar's value starts (the fallback position).
    pub(crate) fn start(&self) -> Option<Position> {
        self.fallback
    }
}

impl<'a> RawText<'a> {
    /// Splits `text` into lines.
    pub(crate) fn new(text: &'a str) -> Self {
        RawText {
            lines: text.lines().collect(),
        }
    }

    fn line(&self, index: usize) -> Option<&'a str> {
        self.lines.get(index).copied()
    }

    /// Number of lines.
    pub(crate) fn len(&self) -> usize {
        self.lines.len()
    }

    /// The 0-based line index of the top-level key `key` (a line starting at column 1 with
    /// `key:`, optionally quoted), or `None`.
    pub(crate) fn top_level_key(&self, key: &str) -> Option<usize> {
        self.lines.iter().position(|line| key_matches(line, key))
    }

    /// The line range `[start, end)` of a top-level key's block: from its line to the next
    /// top-level key or document marker.
    pub(crate) fn block(&self, key: &str) -> Option<(usize, usize)> {
        let start = self.top_level_key(key)?;
        let end = (start + 1..self.lines.len())
            .find(|&i| self.line(i).is_some_and(is_top_level_line))
            .unwrap_or(self.lines.len());
        Some((start, end))
    }

    /// The position of a top-level key.
    pub(crate) fn key_position(&self, key: &str) -> Option<Position> {
        self.top_level_key(key).map(|l| Position::new(l + 1, 1))
    }

    /// The position where the value of the key on line `key_line` starts: after `key:` on
    /// the same line when something (other than a block indicator) is there, otherwise the
    /// first non-blank line after it.
    fn value_start(&self, key_line: usize, end: usize) -> Option<Position> {
        let line = self.line(key_line)?;
        if let Some(colon) = find_key_colon(line) {
            let after = line.get(colon + 1..).unwrap_or("");
            let rest = after.trim();
            let is_block_indicator = rest.starts_with('|') || rest.starts_with('>');
            if !rest.is_empty() && !is_block_indicator && !rest.starts_with('#') {
                let col = chars(line.get(..colon + 1).unwrap_or("")) + indent(after);
                return Some(Position::new(key_line + 1, col + 1));
            }
        }
        (key_line + 1..end)
            .find(|&i| self.line(i).is_some_and(|l| !l.trim().is_empty()))
            .and_then(|i| self.line(i).map(|l| Position::new(i + 1, indent(l) + 1)))
    }

    /// Maps every line of `decoded` (a scalar value of the top-level key `key`) to the raw
    /// text, searching forward from the key's line.
    pub(crate) fn map_scalar(&self, key: &str, decoded: &str) -> LineMap {
        let Some((start, end)) = self.block(key) else {
            return LineMap::default();
        };
        let fallback = self.value_start(start, end);
        let mut map = LineMap {
            lines: Vec::new(),
            fallback,
        };
        // The value may start on the key's own line (`key: value`); search from there.
        let mut cursor = start;
        let mut first_line_offset = self
            .line(start)
            .and_then(find_key_colon)
            .map_or(0, |c| c + 1);
        for decoded_line in decoded.split('\n') {
            let found = self.find_line(decoded_line, cursor, end, first_line_offset);
            if let Some(segments) = &found
                && let Some(last) = segments.last()
            {
                cursor = last.raw_line + 1;
                first_line_offset = 0;
            }
            map.lines.push(found.unwrap_or_default());
        }
        map
    }

    /// Finds the raw line(s) holding `decoded` (one decoded line), from `cursor` to `end`.
    /// On the cursor line itself, only text after byte `offset` counts.
    fn find_line(
        &self,
        decoded: &str,
        cursor: usize,
        end: usize,
        offset: usize,
    ) -> Option<Vec<Segment>> {
        let wanted = decoded.trim();
        if wanted.is_empty() {
            return None;
        }
        let decoded_lead = indent(decoded);
        for i in cursor..end {
            let full = self.line(i)?;
            let (skip_bytes, line) = if i == cursor {
                let o = offset.min(full.len());
                (o, full.get(o..).unwrap_or(""))
            } else {
                (0, full)
            };
            let raw = strip_quotes_and_dash(line.trim());
            if raw.is_empty() {
                continue;
            }
            let raw_start_byte = skip_bytes + byte_offset_of(line, raw);
            let raw_start = chars(full.get(..raw_start_byte).unwrap_or(""));
            if raw == wanted || raw.starts_with(wanted) {
                return Some(vec![Segment {
                    decoded_start: decoded_lead,
                    raw_line: i,
                    raw_start,
                }]);
            }
            if wanted.starts_with(raw) {
                // A folded scalar: the decoded line continues on the following raw lines.
                let mut segments = vec![Segment {
                    decoded_start: decoded_lead,
                    raw_line: i,
                    raw_start,
                }];
                let mut consumed = decoded_lead + chars(raw);
                let mut rest = wanted.get(raw.len()..).unwrap_or("");
                let mut j = i + 1;
                while !rest.trim().is_empty() && j < end {
                    let next_full = self.line(j).unwrap_or("");
                    let next = next_full.trim();
                    if next.is_empty() {
                        j += 1;
                        continue;
                    }
                    let spaces = indent(rest);
                    let trimmed_rest = rest.trim_start();
                    if !trimmed_rest.starts_with(next) && !next.starts_with(trimmed_rest) {
                        break;
                    }
                    consumed += spaces;
                    segments.push(Segment {
                        decoded_start: consumed,
                        raw_line: j,
                        raw_start: indent(next_full),
                    });
                    let take = next.len().min(trimmed_rest.len());
                    consumed += chars(trimmed_rest.get(..take).unwrap_or(""));
                    rest = trimmed_rest.get(take..).unwrap_or("");
                    j += 1;
                }
                return Some(segments);
            }
        }
        None
    }

    /// Finds the list item whose text contains `item`, searching lines `[from, end)`.
    /// Returns the item's 0-based line, its node position (where the scalar starts, maybe a
    /// quote) and the position of the first character of `item`.
    pub(crate) fn find_item(
        &self,
        item: &str,
        from: usize,
        end: usize,
    ) -> Option<(usize, Position, Position)> {
        let needle = item.trim();
        let probe = if needle.is_empty() {
            return None;
        } else {
            needle
        };
        // Escapes in quoted scalars can make the decoded text differ from the raw text;
        // then fall back to the part before the caveat context.
        let short = probe.split(" with ").next().unwrap_or(probe).trim();
        for candidate in [probe, short] {
            for i in from..end {
                let line = self.line(i)?;
                if let Some(byte) = line.find(candidate) {
                    let node_byte = node_start(line, byte);
                    let node = Position::new(i + 1, chars(line.get(..node_byte).unwrap_or("")) + 1);
                    let content = Position::new(i + 1, chars(line.get(..byte).unwrap_or("")) + 1);
                    return Some((i, node, content));
                }
            }
        }
        None
    }

    /// Finds a mapping key `key` (plain or quoted, followed by `:`) in lines `[from, end)`.
    pub(crate) fn find_key(&self, key: &str, from: usize, end: usize) -> Option<(usize, Position)> {
        for i in from..end {
            let line = self.line(i)?;
            let trimmed = line.trim_start();
            let unquoted = trimmed
                .strip_prefix('"')
                .or_else(|| trimmed.strip_prefix('\''))
                .unwrap_or(trimmed);
            if let Some(rest) = unquoted.strip_prefix(key) {
                let rest = rest.trim_start_matches(['"', '\'']).trim_start();
                if rest.starts_with(':') {
                    return Some((i, Position::new(i + 1, indent(line) + 1)));
                }
            }
        }
        None
    }
}

/// Whether `line` is `key:` (plain or quoted) starting at column 1.
fn key_matches(line: &str, key: &str) -> bool {
    let unquoted = line
        .strip_prefix('"')
        .and_then(|l| l.strip_prefix(key)?.strip_prefix('"'))
        .or_else(|| {
            line.strip_prefix('\'')
                .and_then(|l| l.strip_prefix(key)?.strip_prefix('\''))
        })
        .or_else(|| line.strip_prefix(key));
    unquoted.is_some_and(|rest| rest.trim_start_matches([' ', '\t']).starts_with(':'))
}

/// Whether `line` starts a new top-level entry (a key at column 1) or a document marker.
fn is_top_level_line(line: &str) -> bool {
    let Some(first) = line.chars().next() else {
        return false;
    };
    if line.starts_with("---") || line.starts_with("...") {
        return true;
    }
    !first.is_whitespace() && first != '#' && first != '-' && find_key_colon(line).is_some()
}

/// The byte index of the `:` ending a mapping key on this line, if any.
fn find_key_colon(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => {
                if b == b'"' || b == b'\'' {
                    quote = Some(b);
                } else if b == b':' {
                    let next = bytes.get(i + 1);
                    if next.is_none_or(|n| *n == b' ' || *n == b'\t') {
                        return Some(i);
                    }
                } else if b == b'#' && i > 0 && bytes.get(i - 1).is_some_and(|p| *p == b' ') {
                    return None;
                }
            }
        }
    }
    None
}

/// Strips a leading `- ` list marker and surrounding quotes from a trimmed raw line.
fn strip_quotes_and_dash(s: &str) -> &str {
    let s = s.strip_prefix("- ").map_or(s, str::trim_start);
    for quote in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(quote) {
            return inner.strip_suffix(quote).unwrap_or(inner);
        }
    }
    s
}

/// Byte offset of the sub-slice `part` within `whole` (both from the same string).
fn byte_offset_of(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize)
        .saturating_sub(whole.as_ptr() as usize)
        .min(whole.len())
}

/// Where the scalar holding the text at `byte` starts: at an opening quote right before it.
fn node_start(line: &str, byte: usize) -> usize {
    let before = line.get(..byte).unwrap_or("");
    if before.ends_with('"') || before.ends_with('\'') {
        byte - 1
    } else {
        byte
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn maps_literal_and_folded_blocks() {
        let text = "---\nschema: |+\n  definition user {}\n\n  definition doc {\n    relation viewer: user\n  }\nrelationships: >-\n  doc:a#viewer@user:tom\n\n  doc:b#viewer@user:tom\nassertions: {}\n";
        let raw = RawText::new(text);
        let schema = "definition user {}\n\ndefinition doc {\n  relation viewer: user\n}\n";
        let map = raw.map_scalar("schema", schema);
        assert_eq!(map.position(1, 1), Some(Position::new(3, 3)));
        assert_eq!(map.position(4, 3), Some(Position::new(6, 5)));
        assert_eq!(map.position(5, 1), Some(Position::new(7, 3)));
        let rels = "doc:a#viewer@user:tom\ndoc:b#viewer@user:tom";
        let map = raw.map_scalar("relationships", rels);
        assert_eq!(map.position(2, 5), Some(Position::new(11, 7)));
        assert_eq!(raw.block("relationships"), Some((7, 11)));
    }

    #[test]
    fn maps_folded_lines_joined_with_spaces() {
        let text = "relationships: >-\n  doc:a#viewer@user:tom\n  doc:b#viewer@user:tom\n";
        let raw = RawText::new(text);
        let map = raw.map_scalar(
            "relationships",
            "doc:a#viewer@user:tom doc:b#viewer@user:tom",
        );
        assert_eq!(map.position(1, 1), Some(Position::new(2, 3)));
        assert_eq!(map.position(1, 23), Some(Position::new(3, 3)));
    }

    #[test]
    fn maps_inline_value_and_items() {
        let text = "schema: \"definition user {}\"\nassertions:\n  assertTrue:\n    - 'doc:a#view@user:tom with {\"a\": 1}'\n";
        let raw = RawText::new(text);
        let map = raw.map_scalar("schema", "definition user {}");
        assert_eq!(map.position(1, 12), Some(Position::new(1, 21)));
        let (line, node, content) = raw
            .find_item("doc:a#view@user:tom with {\"a\": 1}", 2, 4)
            .unwrap();
        assert_eq!(line, 3);
        assert_eq!(node, Position::new(4, 7));
        assert_eq!(content, Position::new(4, 8));
        assert_eq!(
            raw.find_key("assertTrue", 1, 4).map(|k| k.1),
            Some(Position::new(3, 3))
        );
    }
}
