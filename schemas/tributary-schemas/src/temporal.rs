//! Instants and calendar dates with one encoding per format: Avro logical
//! types (`timestamp-millis`, `date`) on the wire, ISO 8601 text in JSON.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// An instant in UTC, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// A calendar date, in days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Date(pub i32);

/// Text that is not an ISO 8601 instant or date.
#[derive(Debug, thiserror::Error)]
#[error("invalid {what} {input:?}: expected {expected}")]
pub struct TemporalError {
    what: &'static str,
    input: String,
    expected: &'static str,
}

impl Timestamp {
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Timestamp((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339, for example `2026-11-22T05:06:40.123Z`.
    pub fn parse(input: &str) -> Result<Self, TemporalError> {
        OffsetDateTime::parse(input, &Rfc3339)
            .map(|t| Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
            .map_err(|_| TemporalError {
                what: "timestamp",
                input: input.to_string(),
                expected: "RFC 3339 such as 2026-11-22T05:06:40Z",
            })
    }

    /// The calendar date (UTC) this instant falls on.
    pub fn date(self) -> Date {
        Date(self.0.div_euclid(86_400_000) as i32)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0 as i128 * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => {
                let t = t.to_offset(UtcOffset::UTC);
                write!(
                    f,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                    t.year(),
                    t.month() as u8,
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second(),
                    t.millisecond()
                )
            }
            Err(_) => write!(f, "{}ms", self.0),
        }
    }
}

impl Date {
    /// Parses `YYYY-MM-DD`.
    pub fn parse(input: &str) -> Result<Self, TemporalError> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(input, &format)
            .map(|d| Date(d.to_julian_day() - UNIX_EPOCH_JULIAN_DAY))
            .map_err(|_| TemporalError {
                what: "date",
                input: input.to_string(),
                expected: "YYYY-MM-DD",
            })
    }

    pub fn days(self) -> i32 {
        self.0
    }

    pub fn add_days(self, days: i32) -> Date {
        Date(self.0 + days)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match time::Date::from_julian_day(UNIX_EPOCH_JULIAN_DAY + self.0) {
            Ok(d) => write!(f, "{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day()),
            Err(_) => write!(f, "day {}", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp or milliseconds since the epoch")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v).map(Timestamp).map_err(E::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(V)
        } else {
            deserializer.deserialize_i64(V)
        }
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i32(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Date;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a YYYY-MM-DD date or days since 1970-01-01")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Date, E> {
                Date::parse(v).map_err(E::custom)
            }
            fn visit_i32<E: de::Error>(self, v: i32) -> Result<Date, E> {
                Ok(Date(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Date, E> {
                i32::try_from(v).map(Date).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Date, E> {
                i32::try_from(v).map(Date).map_err(E::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(V)
        } else {
            deserializer.deserialize_i32(V)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_and_parse_as_rfc3339() {
        let t = Timestamp(1_539_993_600_123);
        assert_eq!(t.to_string(), "2018-10-20T00:00:00.123Z");
        assert_eq!(Timestamp::parse("2018-10-20T00:00:00.123Z").unwrap(), t);
        assert_eq!(
            Timestamp::parse("2018-10-20T02:00:00.123+02:00").unwrap(),
            t
        );
        assert!(Timestamp::parse("2018-10-20").is_err());
    }

    #[test]
    fn dates_print_and_parse() {
        assert_eq!(Date(0).to_string(), "1970-01-01");
        assert_eq!(
            Date::parse("2018-10-20").unwrap(),
            Timestamp(1_539_993_600_000).date()
        );
        assert_eq!(Date::parse("1969-12-31").unwrap(), Date(-1));
        assert!(Date::parse("2018-13-01").is_err());
    }

    #[test]
    fn json_uses_text() {
        let json = serde_json::to_string(&(Timestamp(0), Date(1))).unwrap();
        assert_eq!(json, r#"["1970-01-01T00:00:00.000Z","1970-01-02"]"#);
        let back: (Timestamp, Date) = serde_json::from_str(&json).unwrap();
        assert_eq!(back, (Timestamp(0), Date(1)));
    }
}
