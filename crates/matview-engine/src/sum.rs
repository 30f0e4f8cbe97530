//! A group's exact sum. Each summed value is a [`Decimal`] (below 2^127
//! nano units) and a row holds fewer than 2^64 records, so any sum of them
//! stays below 2^191 in magnitude: kept in 256 bits, a sum can never
//! overflow, whatever the order records are added, replaced or removed in,
//! and merging two shards' sums cannot either. (Kept in the decimal's own
//! 128 bits, a sum past ±1.7e29 was once silently not added.)

use std::fmt;

use ethnum::{I256, U256};

use super::decimal::{Decimal, DecimalError};

const SCALE: u128 = 1_000_000_000;

/// An exact sum in nano units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Sum(I256);

impl Sum {
    pub const ZERO: Sum = Sum(I256::ZERO);

    pub fn of(value: Decimal) -> Sum {
        Sum(I256::from(value.to_nanos()))
    }

    /// Adds a value. Wrapping is exact here: the true sum always fits (see
    /// the module's note), and wrapping arithmetic is exact whenever the
    /// final value fits, however intermediate steps went.
    pub fn add(&mut self, value: Decimal) {
        self.0 = self.0.wrapping_add(I256::from(value.to_nanos()));
    }

    pub fn subtract(&mut self, value: Decimal) {
        self.0 = self.0.wrapping_sub(I256::from(value.to_nanos()));
    }

    /// The sum of two disjoint sets' sums (two shards of a row).
    pub fn merge(self, other: Sum) -> Sum {
        Sum(self.0.wrapping_add(other.0))
    }

    /// `self - other`: how a sum changed (exact, as [`Sum::merge`]).
    pub fn difference(self, other: Sum) -> Sum {
        Sum(self.0.wrapping_sub(other.0))
    }

    /// The nano units when they fit the decimal's 128 bits (all real sums).
    pub fn to_nanos_i128(self) -> Option<i128> {
        i128::try_from(self.0).ok()
    }

    pub fn from_nanos_i128(nanos: i128) -> Sum {
        Sum(I256::from(nanos))
    }

    pub fn to_le_bytes(self) -> [u8; 32] {
        self.0.to_le_bytes()
    }

    pub fn from_le_bytes(bytes: [u8; 32]) -> Sum {
        Sum(I256::from_le_bytes(bytes))
    }

    /// Reads a sum as [`Sum`]'s `Display` writes it (`-12.5`, every digit),
    /// or any number a [`Decimal`] reads exactly.
    pub fn parse_exact(text: &str) -> Result<Sum, DecimalError> {
        if let Ok(decimal) = Decimal::parse_exact(text) {
            return Ok(Sum::of(decimal));
        }
        let (negative, body) = match text.trim().strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.trim()),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let plain = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !plain(int) || !plain(frac) {
            return Err(DecimalError::Syntax);
        }
        if frac.len() > 9 {
            return Err(DecimalError::TooPrecise);
        }
        let padded = format!("{int}{frac:0<9}");
        let magnitude = U256::from_str_radix(&padded, 10).map_err(|_| DecimalError::OutOfRange)?;
        // Anything a row can hold is below 2^191; refuse what is not.
        if magnitude >> 191u32 != U256::ZERO {
            return Err(DecimalError::OutOfRange);
        }
        let value = magnitude.as_i256();
        Ok(Sum(if negative { -value } else { value }))
    }
}

impl fmt::Display for Sum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let abs = self.0.unsigned_abs();
        let frac = (abs % U256::from(SCALE)).as_u64();
        super::decimal::write_units(f, self.0 < 0, abs / U256::from(SCALE), frac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decimal(text: &str) -> Decimal {
        Decimal::parse_exact(text).expect("decimal")
    }

    #[test]
    fn sums_past_the_decimals_range_stay_exact_and_come_back() {
        // 1.5e28 is within one value's range; twenty of them are not
        // within the decimal's (±1.7e29).
        let big = decimal("15000000000000000000000000000.000000001");
        let mut sum = Sum::ZERO;
        for _ in 0..20 {
            sum.add(big);
        }
        assert_eq!(sum.to_string(), "300000000000000000000000000000.00000002");
        assert_eq!(sum.to_nanos_i128(), None);
        assert_eq!(Sum::parse_exact(&sum.to_string()), Ok(sum));
        for _ in 0..19 {
            sum.subtract(big);
        }
        assert_eq!(
            sum,
            Sum::of(big),
            "removals take back exactly what was added"
        );
        let negative =
            Sum::ZERO.merge(Sum::parse_exact("-300000000000000000000000000000.5").expect("parses"));
        assert_eq!(negative.to_string(), "-300000000000000000000000000000.5");
    }

    #[test]
    fn reads_what_it_writes_and_refuses_the_rest() {
        for text in [
            "0",
            "-0.1",
            "12.5",
            "170141183460469231731687303715.884105727",
        ] {
            let sum = Sum::parse_exact(text).expect(text);
            assert_eq!(sum.to_string(), text);
        }
        assert_eq!(
            Sum::parse_exact("1.0000000001"),
            Err(DecimalError::TooPrecise)
        );
        assert_eq!(Sum::parse_exact("abc"), Err(DecimalError::Syntax));
        assert_eq!(
            Sum::parse_exact(&"9".repeat(80)),
            Err(DecimalError::OutOfRange)
        );
        assert_eq!(
            Sum::parse_exact("1e3").map(|s| s.to_string()),
            Ok("1000".into())
        );
    }
}
