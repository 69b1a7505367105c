//! `Timestamp`: an instant with microsecond precision, parsed from and printed as RFC 3339.

use std::fmt;

/// An instant, as microseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A timestamp that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not an RFC 3339 timestamp (for example 2024-01-31T12:00:00Z)")]
pub struct TimestampError {
    /// The rejected text.
    pub input: String,
}

impl Timestamp {
    /// From microseconds since the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        Timestamp(chrono::Utc::now().timestamp_micros())
    }

    /// Parses RFC 3339 (`2024-01-31T12:00:00Z`, `2024-01-31T04:00:00.5-08:00`).
    pub fn parse_rfc3339(input: &str) -> Result<Self, TimestampError> {
        chrono::DateTime::parse_from_rfc3339(input.trim())
            .map(|t| Timestamp(t.timestamp_micros()))
            .map_err(|_| TimestampError {
                input: input.to_string(),
            })
    }

    /// RFC 3339 in UTC, with fractional seconds only when present.
    pub fn to_rfc3339(self) -> String {
        match chrono::DateTime::from_timestamp_micros(self.0) {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            None => format!("@{}us", self.0),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_utc_and_offsets() {
        let a = Timestamp::parse_rfc3339("2024-10-03T07:16:28.068632-07:00").unwrap();
        let b = Timestamp::parse_rfc3339("2024-10-03T14:16:28.068632Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(b.to_rfc3339(), "2024-10-03T14:16:28.068632Z");
        assert!(Timestamp::parse_rfc3339("2024-13-01").is_err());
    }
}
