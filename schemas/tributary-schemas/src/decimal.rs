//! Exact decimal numbers for money and quantities.
//!
//! Amounts in the data model have a fixed scale (digits after the point):
//! [`Decimal`] has 4, which covers Xero's and QuickBooks' unit prices and
//! every currency's minor unit; [`Decimal5`] has 5, for banking, where Open
//! Banking amounts carry up to five. The value is kept as an integer count
//! of the smallest step (1/10^scale), so arithmetic never rounds.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Digits after the decimal point of every [`Decimal`].
pub const SCALE: u32 = 4;

/// An exact decimal with `S` digits after the point.
///
/// In Avro it is the `decimal` logical type on `bytes` (precision 28, scale
/// `S`: big-endian two's complement of the unscaled value). In JSON it is a
/// string such as `"1234.50"`, so no reader turns it into a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fixed<const S: u32>(i128);

/// Money and quantities: four digits after the point.
pub type Decimal = Fixed<SCALE>;

/// Banking amounts: five digits after the point (Open Banking's
/// `Amount` pattern allows five).
pub type Decimal5 = Fixed<5>;

/// A decimal string that could not be read exactly.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid decimal {input:?}: {reason}")]
pub struct DecimalError {
    input: String,
    reason: String,
}

impl<const S: u32> Fixed<S> {
    pub const ZERO: Self = Fixed(0);
    /// 10^S: the unscaled value of 1.
    const ONE: i128 = 10_i128.pow(S);

    /// The decimal `units / 10^S`.
    pub const fn from_scaled(units: i128) -> Self {
        Fixed(units)
    }

    /// The whole number `n`.
    pub const fn from_int(n: i64) -> Self {
        Fixed(n as i128 * Self::ONE)
    }

    /// The value in steps of 1/10^S.
    pub const fn scaled(self) -> i128 {
        self.0
    }

    /// `units` of a currency whose minor unit has `exponent` digits (cents:
    /// 2, yen: 0), exactly; `None` when the exponent exceeds the scale.
    pub fn from_minor_units(units: i64, exponent: u32) -> Option<Self> {
        let factor = 10_i128.checked_pow(S.checked_sub(exponent)?)?;
        (units as i128).checked_mul(factor).map(Fixed)
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Fixed)
    }

    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Fixed)
    }

    /// `self * other`, rounded half away from zero to S digits.
    pub fn checked_mul(self, other: Self) -> Option<Self> {
        let product = self.0.checked_mul(other.0)?;
        let rounded = (product.abs() + Self::ONE / 2) / Self::ONE;
        Some(Fixed(if product < 0 { -rounded } else { rounded }))
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
                reason: "avro decimal must have 1 to 16 bytes".to_string(),
            });
        }
        let filler = if bytes[0] & 0x80 != 0 { 0xff } else { 0x00 };
        let mut full = [filler; 16];
        full[16 - bytes.len()..].copy_from_slice(bytes);
        Ok(Fixed(i128::from_be_bytes(full)))
    }
}

impl<const S: u32> fmt::Display for Fixed<S> {
    /// At least two digits after the point, and more only when they matter:
    /// `12.00`, `0.125`, `-3.0001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / Self::ONE as u128;
        let mut frac = format!("{:0width$}", abs % Self::ONE as u128, width = S as usize);
        while frac.len() > 2 && frac.ends_with('0') {
            frac.pop();
        }
        write!(f, "{sign}{whole}.{frac}")
    }
}

impl<const S: u32> FromStr for Fixed<S> {
    type Err = DecimalError;

    /// Accepts `-12`, `12.5`, `+0.0001`; refuses more than S digits after
    /// the point rather than rounding money silently.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| DecimalError {
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
            return Err(err("no digits".to_string()));
        }
        if !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return Err(err(
                "only digits, one point and a leading sign are allowed".to_string()
            ));
        }
        if frac.len() > S as usize {
            return Err(err(format!("more than {S} digits after the point")));
        }
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| err("too large".to_string()))?
        };
        let frac_units: i128 = if frac.is_empty() {
            0
        } else {
            frac.parse::<i128>()
                .map_err(|_| err("too large".to_string()))?
                * 10_i128.pow(S - frac.len() as u32)
        };
        let units = whole
            .checked_mul(Self::ONE)
            .and_then(|w| w.checked_add(frac_units))
            .ok_or_else(|| err("too large".to_string()))?;
        Ok(Fixed(if negative { -units } else { units }))
    }
}

impl<const S: u32> Serialize for Fixed<S> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_bytes(&self.to_avro_bytes())
        }
    }
}

impl<'de, const S: u32> Deserialize<'de> for Fixed<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DecimalVisitor<const S: u32>;
        impl<'v, const S: u32> Visitor<'v> for DecimalVisitor<S> {
            type Value = Fixed<S>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal string or avro decimal bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Fixed<S>, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Fixed<S>, E> {
                Fixed::from_avro_bytes(v).map_err(E::custom)
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Fixed<S>, E> {
                self.visit_bytes(&v)
            }
            fn visit_seq<A: de::SeqAccess<'v>>(self, mut seq: A) -> Result<Fixed<S>, A::Error> {
                let mut bytes = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                self.visit_bytes(&bytes)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(DecimalVisitor::<S>)
        } else {
            deserializer.deserialize_bytes(DecimalVisitor::<S>)
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
    fn five_places_for_banking() {
        let d: Decimal5 = "-1234.56789".parse().unwrap();
        assert_eq!(d.scaled(), -123_456_789);
        assert_eq!(d.to_string(), "-1234.56789");
        assert_eq!("7".parse::<Decimal5>().unwrap().to_string(), "7.00");
        assert!("0.000001".parse::<Decimal5>().is_err());
        let err = "0.000001".parse::<Decimal5>().unwrap_err().to_string();
        assert!(err.contains("more than 5 digits"), "{err}");
    }

    #[test]
    fn minor_units_by_currency_exponent() {
        // cents, yen, Kuwaiti fils
        assert_eq!(
            Decimal::from_minor_units(1234, 2).unwrap().to_string(),
            "12.34"
        );
        assert_eq!(
            Decimal::from_minor_units(1234, 0).unwrap().to_string(),
            "1234.00"
        );
        assert_eq!(
            Decimal::from_minor_units(-1234, 3).unwrap().to_string(),
            "-1.234"
        );
        assert_eq!(
            Decimal::from_minor_units(1, 4).unwrap().to_string(),
            "0.0001"
        );
        assert_eq!(Decimal::from_minor_units(1, 5), None);
        let max = Decimal::from_minor_units(i64::MAX, 0).unwrap();
        assert_eq!(max.scaled(), i64::MAX as i128 * 10_000);
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
