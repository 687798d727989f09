//! Instants and days as ISO 8601 text: the contract's dates, and the `now`
//! a caller gives in place of a clock.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::Error;

/// A Unix timestamp as an ISO 8601 instant in UTC (`2026-11-30T10:15:00Z`).
pub fn iso(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// The day in Paris of a Sirene timestamp, which marks midnight there (22:00
/// or 23:00 UTC the day before): `1955-01-01`.
pub fn paris_day(unix: i64) -> Option<String> {
    let shifted = unix.checked_add(2 * 3600)?;
    OffsetDateTime::from_unix_timestamp(shifted)
        .ok()
        .map(|t| t.date().to_string())
}

/// Reads the caller's `now` (RFC 3339: `2026-11-30T10:15:00Z`, any offset,
/// fractions allowed) as Unix seconds.
pub fn parse_now(now: &str) -> Result<u64, Error> {
    OffsetDateTime::parse(now.trim(), &Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
        .ok_or_else(|| {
            Error::Other(format!(
                "`now` must be the current instant in ISO 8601 (RFC 3339), such as 2026-11-30T10:15:00Z; got {now:?}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_days_read_and_write_iso_8601() {
        assert_eq!(iso(1_796_005_740), "2026-11-30T02:29:00Z");
        assert_eq!(parse_now("2026-11-30T02:29:00Z").unwrap(), 1_796_005_740);
        assert_eq!(parse_now("2026-11-30T03:29:00.123456+01:00").unwrap(), 1_796_005_740);
        assert!(matches!(parse_now("2026-11-30"), Err(Error::Other(m)) if m.contains("RFC 3339")));
        // Midnight in Paris, winter and summer.
        assert_eq!(paris_day(-473_389_200).as_deref(), Some("1955-01-01"));
        assert_eq!(paris_day(1_719_784_800).as_deref(), Some("2024-07-01"));
    }
}
