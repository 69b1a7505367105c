//! Context values (JSON-shaped `ContextValue`s) to typed CEL values, by the declared parameter
//! type, as SpiceDB converts them (`pkg/caveats/types`): numbers may be given as numeric
//! strings, an `int` must be integral, a `uint` not negative; `timestamp` is an RFC 3339
//! string, `duration` a Go duration string (`1h30m`), `bytes` standard base64, `ipaddress` an
//! IP address string; an `any` value keeps its JSON shape with every number a `double` (as
//! SpiceDB receives numbers through `google.protobuf.Struct`). Nesting and size are bounded.

use std::collections::HashMap;

use cel::common::types::{
    CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelList, CelMap, CelMapKey, CelNull,
    CelString, CelTimestamp, CelUInt,
};
use cel::common::value::Val;

use crate::model::{ContextMap, ContextValue};
use crate::schema::CaveatType;

use super::env::IpAddress;

/// Deepest nesting of lists and maps accepted in a caveat context.
pub const MAX_CONTEXT_DEPTH: usize = 32;

/// Largest caveat context accepted, in bytes of its JSON form (approximately): the request's
/// and the relationship's together. SpiceDB's default for one context is 4 KiB; this leaves
/// room for lists of a few thousand short values while bounding evaluation.
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;

/// The approximate size of `context` as JSON, or why it is too large or too deep.
pub(super) fn context_size(context: &ContextMap) -> Result<usize, String> {
    let mut total = 2usize;
    for (k, v) in context {
        total = total
            .saturating_add(k.len() + 4)
            .saturating_add(value_size(v, 1)?);
    }
    Ok(total)
}

fn value_size(v: &ContextValue, depth: usize) -> Result<usize, String> {
    if depth > MAX_CONTEXT_DEPTH {
        return Err(format!(
            "the context is nested more than {MAX_CONTEXT_DEPTH} levels deep"
        ));
    }
    Ok(match v {
        ContextValue::Null => 4,
        ContextValue::Bool(_) => 5,
        ContextValue::Int(_) | ContextValue::UInt(_) | ContextValue::Double(_) => 8,
        ContextValue::String(s) => s.len().saturating_add(2),
        ContextValue::List(items) => {
            let mut total = 2usize;
            for item in items {
                total = total.saturating_add(value_size(item, depth + 1)?.saturating_add(1));
            }
            total
        }
        ContextValue::Map(map) => {
            let mut total = 2usize;
            for (k, item) in map {
                total = total
                    .saturating_add(k.len() + 4)
                    .saturating_add(value_size(item, depth + 1)?);
            }
            total
        }
    })
}

/// The CEL value of `value` for a parameter of type `ty`, or why it is not one.
pub(super) fn convert(ty: &CaveatType, value: &ContextValue) -> Result<Box<dyn Val>, String> {
    convert_at(ty, value, 0)
}

fn shown(value: &ContextValue) -> String {
    let text = value.to_string();
    if text.chars().count() > 64 {
        let cut: String = text.chars().take(61).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn convert_at(ty: &CaveatType, value: &ContextValue, depth: usize) -> Result<Box<dyn Val>, String> {
    if depth > MAX_CONTEXT_DEPTH {
        return Err(format!(
            "the value is nested more than {MAX_CONTEXT_DEPTH} levels deep"
        ));
    }
    let expected = |what: &str| format!("expected {what}, found `{}`", shown(value));
    Ok(match ty {
        CaveatType::Any => any(value, depth)?,
        CaveatType::Bool => match value {
            ContextValue::Bool(b) => Box::new(CelBool::from(*b)),
            _ => return Err(expected("a bool")),
        },
        CaveatType::String => match value {
            ContextValue::String(s) => Box::new(CelString::from(s.clone())),
            _ => return Err(expected("a string")),
        },
        CaveatType::Int => Box::new(CelInt::from(
            integer(value).ok_or_else(|| expected("an integer"))?,
        )),
        CaveatType::UInt => {
            let i = integer(value).ok_or_else(|| expected("a non-negative integer"))?;
            // As SpiceDB: the number goes through an `int64` first (larger ones saturate).
            let u = u64::try_from(i).map_err(|_| expected("a non-negative integer"))?;
            Box::new(CelUInt::from(u))
        }
        CaveatType::Double => Box::new(CelDouble::from(
            number(value).ok_or_else(|| expected("a number"))?,
        )),
        CaveatType::Bytes => match value {
            ContextValue::String(s) => Box::new(CelBytes::from(
                decode_base64(s).ok_or_else(|| expected("a base64-encoded string"))?,
            )),
            _ => return Err(expected("a base64-encoded string")),
        },
        CaveatType::Duration => match value {
            ContextValue::String(s) => Box::new(CelDuration::from(
                parse_go_duration(s)
                    .ok_or_else(|| expected("a duration string such as `1h30m` or `90s`"))?,
            )),
            _ => return Err(expected("a duration string such as `1h30m` or `90s`")),
        },
        CaveatType::Timestamp => {
            let what = "an RFC 3339 timestamp string such as `2024-01-31T12:00:00Z`";
            match value {
                ContextValue::String(s) => {
                    let t = chrono::DateTime::parse_from_rfc3339(s.trim())
                        .map_err(|_| expected(what))?;
                    // Evaluated in UTC, as SpiceDB's environment sets.
                    Box::new(CelTimestamp::from(
                        t.with_timezone(&chrono::Utc).fixed_offset(),
                    ))
                }
                _ => return Err(expected(what)),
            }
        }
        CaveatType::IpAddress => match value {
            ContextValue::String(s) => {
                Box::new(IpAddress::parse(s).ok_or_else(|| expected("an IP address string"))?)
            }
            _ => return Err(expected("an IP address string")),
        },
        CaveatType::List(item) => match value {
            ContextValue::List(items) => {
                let mut out: Vec<Box<dyn Val>> = Vec::with_capacity(items.len());
                for (i, v) in items.iter().enumerate() {
                    out.push(
                        convert_at(item, v, depth + 1).map_err(|e| format!("at index {i}: {e}"))?,
                    );
                }
                Box::new(CelList::from(out))
            }
            _ => return Err(expected("a list")),
        },
        CaveatType::Map(item) => match value {
            ContextValue::Map(map) => {
                let mut out: HashMap<CelMapKey<'static>, Box<dyn Val>> =
                    HashMap::with_capacity(map.len());
                for (k, v) in map {
                    let converted =
                        convert_at(item, v, depth + 1).map_err(|e| format!("at key `{k}`: {e}"))?;
                    out.insert(CelMapKey::from(k.clone()), converted);
                }
                Box::new(CelMap::from(out))
            }
            _ => return Err(expected("a map (a JSON object)")),
        },
    })
}

/// An `any` value: its JSON shape, numbers as `double`.
fn any(value: &ContextValue, depth: usize) -> Result<Box<dyn Val>, String> {
    if depth > MAX_CONTEXT_DEPTH {
        return Err(format!(
            "the value is nested more than {MAX_CONTEXT_DEPTH} levels deep"
        ));
    }
    Ok(match value {
        ContextValue::Null => Box::new(CelNull),
        ContextValue::Bool(b) => Box::new(CelBool::from(*b)),
        ContextValue::Int(_) | ContextValue::UInt(_) | ContextValue::Double(_) => {
            Box::new(CelDouble::from(number(value).unwrap_or(f64::NAN)))
        }
        ContextValue::String(s) => Box::new(CelString::from(s.clone())),
        ContextValue::List(items) => {
            let mut out: Vec<Box<dyn Val>> = Vec::with_capacity(items.len());
            for v in items {
                out.push(any(v, depth + 1)?);
            }
            Box::new(CelList::from(out))
        }
        ContextValue::Map(map) => {
            let mut out: HashMap<CelMapKey<'static>, Box<dyn Val>> =
                HashMap::with_capacity(map.len());
            for (k, v) in map {
                out.insert(CelMapKey::from(k.clone()), any(v, depth + 1)?);
            }
            Box::new(CelMap::from(out))
        }
    })
}

/// A number, or a string holding one (as SpiceDB's `big.ParseFloat`).
fn number(value: &ContextValue) -> Option<f64> {
    match value {
        ContextValue::Int(i) => Some(*i as f64),
        ContextValue::UInt(u) => Some(*u as f64),
        ContextValue::Double(d) => Some(*d),
        ContextValue::String(s) => {
            let s = s.trim();
            let d: f64 = s.parse().ok()?;
            // Rust also reads `inf` and `NaN`; Go's parser reads `Inf` but not `NaN`.
            (!d.is_nan()).then_some(d)
        }
        _ => None,
    }
}

/// An integral number (or a string holding one), saturated to `i64` as SpiceDB's
/// `big.Float.Int64` does.
fn integer(value: &ContextValue) -> Option<i64> {
    match value {
        ContextValue::Int(i) => Some(*i),
        ContextValue::UInt(u) => Some(i64::try_from(*u).unwrap_or(i64::MAX)),
        ContextValue::String(s) if s.trim().parse::<i64>().is_ok() => s.trim().parse().ok(),
        _ => {
            let d = number(value)?;
            // `as` saturates, as `Int64` does.
            (d.is_finite() && d.fract() == 0.0).then_some(d as i64)
        }
    }
}

/// Nanoseconds per unit of Go's `time.ParseDuration`.
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Go's `time.ParseDuration`: a signed sequence of decimal numbers, each with an optional
/// fraction and a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. `-1.5h` or `2h45m`.
pub(crate) fn parse_go_duration(text: &str) -> Option<chrono::Duration> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let limit: u128 = if negative { 1 << 63 } else { (1 << 63) - 1 };
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at_checked(int_len)?;
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => {
                let len = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
                f.split_at_checked(len)?
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at_checked(unit_len)?;
        let per = unit_nanos(unit)?;
        let mut whole: u128 = 0;
        for d in int_part.bytes() {
            whole = whole.checked_mul(10)?.checked_add(u128::from(d - b'0'))?;
            if whole > limit {
                return None;
            }
        }
        let mut value = whole.checked_mul(per)?;
        // The fraction, to nanosecond precision (further digits cannot matter).
        let (mut frac, mut scale) = (0u128, 1u128);
        for d in frac_part.bytes().take(19) {
            frac = frac * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        value = value.checked_add(frac.checked_mul(per)? / scale)?;
        total = total.checked_add(value)?;
        if total > limit {
            return None;
        }
        rest = after;
    }
    let nanos = i128::try_from(total).ok()?;
    let nanos = i64::try_from(if negative { -nanos } else { nanos }).ok()?;
    Some(chrono::Duration::nanoseconds(nanos))
}

/// Standard base64 with padding (Go's `base64.StdEncoding`; line breaks are ignored).
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    if digits.len() % 4 != 0 {
        return None;
    }
    let value = |b: u8| -> Option<u32> {
        Some(u32::from(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(digits.len() / 4 * 3);
    let chunks: Vec<&[u8]> = digits.chunks(4).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let [a, b, c, d] = chunk else {
            return None;
        };
        let padding = match (*c, *d) {
            (b'=', b'=') if last => 2,
            (_, b'=') if last => 1,
            _ => 0,
        };
        let n = (value(*a)? << 18)
            | (value(*b)? << 12)
            | (if padding == 2 { 0 } else { value(*c)? << 6 })
            | (if padding >= 1 { 0 } else { value(*d)? });
        let bytes = n.to_be_bytes();
        let (_, three) = bytes.split_at(1);
        out.extend(three.iter().take(3 - padding));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ns = |s: &str| parse_go_duration(s).and_then(|d| d.num_nanoseconds());
        assert_eq!(ns("1h"), Some(3_600_000_000_000));
        assert_eq!(ns("1h30m"), Some(5_400_000_000_000));
        assert_eq!(ns("-1.5h"), Some(-5_400_000_000_000));
        assert_eq!(ns("300ms"), Some(300_000_000));
        assert_eq!(ns("2h45m0.5s"), Some(9_900_500_000_000));
        assert_eq!(ns("1µs1us1\u{3bc}s1ns"), Some(3_001));
        assert_eq!(ns(".5s"), Some(500_000_000));
        assert_eq!(ns("0"), Some(0));
        assert_eq!(ns("+5s"), Some(5_000_000_000));
        for bad in [
            "",
            "1",
            "h",
            "1x",
            "1.h",
            "-",
            "..5s",
            "9999999999999999999h",
            "1h 2m",
        ] {
            if bad == "1.h" {
                // Go accepts a number with an empty fraction.
                assert_eq!(ns(bad), Some(3_600_000_000_000));
                continue;
            }
            assert_eq!(ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(decode_base64("aGVsbA=="), Some(b"hell".to_vec()));
        assert_eq!(decode_base64("aGVs"), Some(b"hel".to_vec()));
        assert_eq!(decode_base64(""), Some(Vec::new()));
        assert_eq!(decode_base64("aGVsbG8"), None);
        assert_eq!(decode_base64("aG=sbG8="), None);
        assert_eq!(decode_base64("a!Vs"), None);
    }

    #[test]
    fn numbers_follow_spicedb() {
        let conv = |ty: CaveatType, v: ContextValue| convert(&ty, &v).map(|v| format!("{v:?}"));
        assert!(conv(CaveatType::Int, ContextValue::Double(4.0)).is_ok());
        assert!(conv(CaveatType::Int, ContextValue::String("42".into())).is_ok());
        assert!(conv(CaveatType::Int, ContextValue::String("1e3".into())).is_ok());
        assert!(
            conv(CaveatType::Int, ContextValue::Double(1.5))
                .unwrap_err()
                .contains("expected an integer, found `1.5`")
        );
        assert!(conv(CaveatType::UInt, ContextValue::Int(-1)).is_err());
        assert!(conv(CaveatType::Double, ContextValue::String("2.5".into())).is_ok());
        assert!(conv(CaveatType::Double, ContextValue::String("abc".into())).is_err());
        assert!(conv(CaveatType::String, ContextValue::Int(1)).is_err());
        assert!(conv(CaveatType::Bool, ContextValue::String("true".into())).is_err());
        assert!(conv(CaveatType::Int, ContextValue::Null).is_err());
    }

    #[test]
    fn nesting_and_size_are_bounded() {
        let mut deep = ContextValue::Int(1);
        for _ in 0..40 {
            deep = ContextValue::List(vec![deep]);
        }
        assert!(
            convert(&CaveatType::Any, &deep)
                .unwrap_err()
                .contains("nested")
        );
        let mut map = ContextMap::new();
        map.insert("x".into(), deep);
        assert!(context_size(&map).is_err());
        let mut big = ContextMap::new();
        big.insert("s".into(), ContextValue::String("x".repeat(100)));
        assert_eq!(context_size(&big).unwrap(), 2 + 5 + 102);
    }
}
