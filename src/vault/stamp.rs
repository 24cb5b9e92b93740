//! Version stamps (`YYYYMMDD-HHMMSS`, UTC) and the ISO instants of counters and audit rows.

use std::fmt;
use std::time::{Duration, SystemTime};

/// 9999-12-31T23:59:59Z in Unix seconds: the last instant a stamp can name.
const LAST_REPRESENTABLE: u64 = 253_402_300_799;

#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Stamp(String);

/// Why text is not a stamp. What is quoted is cut short ([`super::error::excerpt`]):
/// a stamp comes from vault content anyone can write, of any size.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StampError {
    /// Not 8 digits, `-`, 6 digits.
    #[error("{excerpt} is not a YYYYMMDD-HHMMSS stamp")]
    Shape { excerpt: String },
    /// The right shape, but no such instant (month 13, day 99, …).
    #[error("{stamp:?} is not a valid UTC time")]
    NoSuchTime {
        stamp: String,
        #[source]
        source: humantime::TimestampError,
    },
}

impl TryFrom<String> for Stamp {
    type Error = StampError;
    fn try_from(s: String) -> Result<Self, StampError> {
        Stamp::parse(&s)
    }
}

impl From<Stamp> for String {
    fn from(s: Stamp) -> String {
        s.0
    }
}

impl Stamp {
    pub const LEN: usize = 15;

    pub fn parse(s: &str) -> Result<Stamp, StampError> {
        let b = s.as_bytes();
        let ok = b.len() == Self::LEN
            && b[8] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 8 || c.is_ascii_digit());
        if !ok {
            return Err(StampError::Shape {
                excerpt: super::error::excerpt(s),
            });
        }
        let stamp = Stamp(s.to_owned());
        stamp
            .to_system_time()
            .map_err(|source| StampError::NoSuchTime {
                stamp: s.to_owned(),
                source,
            })?;
        Ok(stamp)
    }

    /// The stamp of an instant. `None` past 9999-12-31T23:59:59Z, where the
    /// eight-digit date runs out.
    pub fn from_time(t: SystemTime) -> Option<Stamp> {
        let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
        if secs > LAST_REPRESENTABLE {
            return None;
        }
        let iso = humantime::format_rfc3339_seconds(t).to_string();
        // 2026-05-23T11:42:01Z -> 20260523-114201
        let s: String = iso
            .get(..19)?
            .chars()
            .filter(|c| *c != '-' && *c != ':')
            .collect();
        Some(Stamp(s.replace('T', "-")))
    }

    pub fn now() -> Stamp {
        Self::from_time(SystemTime::now()).expect("the system clock is before the year 10000")
    }

    pub fn to_system_time(&self) -> Result<SystemTime, humantime::TimestampError> {
        let s = &self.0;
        let iso = format!(
            "{}-{}-{}T{}:{}:{}Z",
            &s[0..4],
            &s[4..6],
            &s[6..8],
            &s[9..11],
            &s[11..13],
            &s[13..15]
        );
        humantime::parse_rfc3339(&iso)
    }

    /// A stamp for a new version: now, or one second past `previous` when the clock
    /// is behind or in the same second, so stamps strictly increase. `None` when
    /// `previous` is the last stamp there is (`99991231-235959`): vault content an
    /// attacker or a broken clock can produce, refused instead of wrapped.
    pub fn next_after(previous: &Stamp) -> Option<Stamp> {
        let now = Stamp::now();
        if &now > previous {
            return Some(now);
        }
        let t = previous.to_system_time().ok()?;
        Stamp::from_time(t.checked_add(Duration::from_secs(1))?)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `2026-05-23T11:42:01.234Z`, the form JS `toISOString()` writes.
pub fn iso_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_increase() {
        let s = Stamp::parse("20260523-114201").unwrap();
        assert_eq!(
            Stamp::from_time(s.to_system_time().unwrap()),
            Some(s.clone())
        );
        let future = Stamp::parse("29990101-000000").unwrap();
        assert_eq!(
            Stamp::next_after(&future).unwrap().as_str(),
            "29990101-000001"
        );
        assert!(Stamp::next_after(&s).unwrap() > s);
        let last = Stamp::parse("99991231-235959").unwrap();
        assert_eq!(
            Stamp::next_after(&last),
            None,
            "no stamp after the last one"
        );
        assert!(Stamp::parse("2026052-1142011").is_err());
        // What does not parse is quoted in a bounded excerpt, whatever its size.
        let huge = "2".repeat(1 << 20);
        let e = Stamp::parse(&huge).unwrap_err().to_string();
        assert!(e.len() < 100 && e.contains("(1048576 bytes)"), "{e}");
        assert!(Stamp::parse("ééééééééééééééééééééééééééééééééééééééééééééé").is_err());
        assert!(Stamp::parse("20261399-114201").is_err());
    }

    #[test]
    fn shape_and_time_are_told_apart() {
        assert_eq!(
            Stamp::parse("2026052-1142011"),
            Err(StampError::Shape {
                excerpt: "\"2026052-1142011\"".into()
            })
        );
        let e = Stamp::parse("20261399-114201").unwrap_err();
        assert!(
            matches!(&e, StampError::NoSuchTime { stamp, .. } if stamp == "20261399-114201"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "\"20261399-114201\" is not a valid UTC time");
        assert!(std::error::Error::source(&e).is_some());
        // Through serde too: a journal with a bad stamp names why.
        let e = serde_json::from_str::<Stamp>("\"20261399-114201\"").unwrap_err();
        assert!(e.to_string().contains("is not a valid UTC time"), "{e}");
    }
}
