//! Exact decimal numbers for money and quantities.
//!
//! Every amount in the data model has scale 4 (four digits after the point),
//! which covers Xero's and QuickBooks' unit prices. The value is kept as an
//! integer count of 1/10,000ths, so arithmetic never rounds.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Digits after the decimal point of every [`Decimal`].
pub const SCALE: u32 = 4;
const ONE: i128 = 10_000;

/// An exact decimal with four digits after the point.
///
/// In Avro it is the `decimal` logical type on `bytes` (precision 28, scale 4:
/// big-endian two's complement of the unscaled value). In JSON it is a string
/// such as `"1234.50"`, so no reader turns it into a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Decimal(i128);

/// A decimal string that could not be read exactly.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid decimal {input:?}: {reason}")]
pub struct DecimalError {
    input: String,
    reason: &'static str,
}

impl Decimal {
    pub const ZERO: Decimal = Decimal(0);

    /// The decimal `units / 10^4`.
    pub const fn from_scaled(units: i128) -> Self {
        Decimal(units)
    }

    /// The whole number `n`.
    pub const fn from_int(n: i64) -> Self {
        Decimal(n as i128 * ONE)
    }

    /// The value in 1/10,000ths.
    pub const fn scaled(self) -> i128 {
        self.0
    }

    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        self.0.checked_add(other.0).map(Decimal)
    }

    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        self.0.checked_sub(other.0).map(Decimal)
    }

    /// `self * other`, rounded half away from zero to four digits.
    pub fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        let product = self.0.checked_mul(other.0)?;
        let rounded = (product.abs() + ONE / 2) / ONE;
        Some(Decimal(if product < 0 { -rounded } else { rounded }))
    }

    /// Big-endian two's complement bytes of the unscaled value, as short as
    /// the sign allows (Avro's decimal encoding).
    pub fn to_avro_bytes(self) -> Vec<u8> {
        let bytes = self.0.to_be_bytes();
        let negative = self.0 < 0;
        let filler = if negative { 0xff } else { 0x00 };
        let mut start = 0;
        // Drop leading filler bytes while the next byte still carries the sign.
        while start < bytes.len() - 1
            && bytes[start] == filler
            && (bytes[start + 1] & 0x80 != 0) == negative
        {
            start += 1;
        }
        bytes[start..].to_vec()
    }

    /// Reads Avro decimal bytes; more than 16 bytes cannot be held exactly.
    pub fn from_avro_bytes(bytes: &[u8]) -> Result<Self, DecimalError> {
        if bytes.is_empty() || bytes.len() > 16 {
            return Err(DecimalError {
                input: format!("{bytes:02x?}"),
                reason: "avro decimal must have 1 to 16 bytes",
            });
        }
        let filler = if bytes[0] & 0x80 != 0 { 0xff } else { 0x00 };
        let mut full = [filler; 16];
        full[16 - bytes.len()..].copy_from_slice(bytes);
        Ok(Decimal(i128::from_be_bytes(full)))
    }
}

impl fmt::Display for Decimal {
    /// At least two digits after the point, and more only when they matter:
    /// `12.00`, `0.125`, `-3.0001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / ONE as u128;
        let mut frac = format!("{:04}", abs % ONE as u128);
        while frac.len() > 2 && frac.ends_with('0') {
            frac.pop();
        }
        write!(f, "{sign}{whole}.{frac}")
    }
}

impl FromStr for Decimal {
    type Err = DecimalError;

    /// Accepts `-12`, `12.5`, `+0.0001`; refuses more than four digits after
    /// the point rather than rounding money silently.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| DecimalError {
            input: input.to_string(),
            reason,
        };
        let (negative, body) = match input.as_bytes().first() {
            Some(b'-') => (true, &input[1..]),
            Some(b'+') => (false, &input[1..]),
            _ => (false, input),
        };
        let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(err("no digits"));
        }
        if !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return Err(err("only digits, one point and a leading sign are allowed"));
        }
        if frac.len() > SCALE as usize {
            return Err(err("more than 4 digits after the point"));
        }
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| err("too large"))?
        };
        let frac_units: i128 = if frac.is_empty() {
            0
        } else {
            frac.parse::<i128>().map_err(|_| err("too large"))?
                * 10_i128.pow(SCALE - frac.len() as u32)
        };
        let units = whole
            .checked_mul(ONE)
            .and_then(|w| w.checked_add(frac_units))
            .ok_or_else(|| err("too large"))?;
        Ok(Decimal(if negative { -units } else { units }))
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_bytes(&self.to_avro_bytes())
        }
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DecimalVisitor;
        impl<'v> Visitor<'v> for DecimalVisitor {
            type Value = Decimal;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal string or avro decimal bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Decimal, E> {
                Decimal::from_avro_bytes(v).map_err(E::custom)
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Decimal, E> {
                self.visit_bytes(&v)
            }
            fn visit_seq<A: de::SeqAccess<'v>>(self, mut seq: A) -> Result<Decimal, A::Error> {
                let mut bytes = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                self.visit_bytes(&bytes)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(DecimalVisitor)
        } else {
            deserializer.deserialize_bytes(DecimalVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_exactly() {
        for (input, printed) in [
            ("12", "12.00"),
            ("12.5", "12.50"),
            ("-0.0001", "-0.0001"),
            ("+3.125", "3.125"),
            (".5", "0.50"),
            ("1234567890123456789.1234", "1234567890123456789.1234"),
        ] {
            assert_eq!(
                input.parse::<Decimal>().unwrap().to_string(),
                printed,
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_what_it_cannot_hold_exactly() {
        for bad in [
            "",
            "-",
            "1.23456",
            "1e5",
            "12,5",
            "1.2.3",
            "abc",
            "99999999999999999999999999999999999999",
        ] {
            assert!(bad.parse::<Decimal>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn avro_bytes_round_trip_and_are_minimal() {
        assert_eq!(Decimal::from_scaled(0).to_avro_bytes(), vec![0x00]);
        assert_eq!(Decimal::from_scaled(127).to_avro_bytes(), vec![0x7f]);
        assert_eq!(Decimal::from_scaled(128).to_avro_bytes(), vec![0x00, 0x80]);
        assert_eq!(Decimal::from_scaled(-1).to_avro_bytes(), vec![0xff]);
        assert_eq!(Decimal::from_scaled(-129).to_avro_bytes(), vec![0xff, 0x7f]);
        for units in [
            0,
            1,
            -1,
            255,
            -256,
            1_000_000_007,
            i64::MAX as i128,
            i128::MIN,
            i128::MAX,
        ] {
            let d = Decimal::from_scaled(units);
            assert_eq!(Decimal::from_avro_bytes(&d.to_avro_bytes()).unwrap(), d);
        }
        assert!(Decimal::from_avro_bytes(&[]).is_err());
        assert!(Decimal::from_avro_bytes(&[1; 17]).is_err());
    }

    #[test]
    fn multiplication_rounds_half_away_from_zero() {
        let q: Decimal = "3".parse().unwrap();
        let p: Decimal = "0.3333".parse().unwrap();
        assert_eq!(q.checked_mul(p).unwrap().to_string(), "0.9999");
        let a: Decimal = "0.0005".parse().unwrap();
        let half: Decimal = "0.5".parse().unwrap();
        assert_eq!(a.checked_mul(half).unwrap().scaled(), 3);
        assert_eq!(
            a.checked_mul(half)
                .map(|d| Decimal::from_scaled(-d.scaled()))
                .unwrap()
                .scaled(),
            -3
        );
    }
}
