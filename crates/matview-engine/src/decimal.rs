//! Exact decimal numbers for sums and comparisons: sums of prices must not
//! depend on the order records arrive in, so floats are out.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Number;

/// Fraction digits kept exactly.
const SCALE_DIGITS: u32 = 9;
const SCALE: i128 = 1_000_000_000;

/// A decimal with 9 exact fraction digits (nano units), range about ±1.7e29.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Decimal(i128);

/// Why a number cannot be a [`Decimal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("is not a decimal number")]
    Syntax,
    #[error("is out of range (magnitude must stay below 1e29)")]
    OutOfRange,
    #[error("has more than 9 fraction digits (sums keep exactly 9; round it where it is produced)")]
    TooPrecise,
}

impl Decimal {
    pub const ZERO: Decimal = Decimal(0);

    /// The value in nano units (for compact storage).
    pub fn to_nanos(self) -> i128 {
        self.0
    }

    pub fn from_nanos(nanos: i128) -> Decimal {
        Decimal(nanos)
    }

    pub fn from_i64(v: i64) -> Decimal {
        Decimal(i128::from(v) * SCALE)
    }

    /// From a JSON number, exactly for integers and for floats with up to 9
    /// fraction digits (more are rounded half away from zero).
    pub fn from_json(n: &Number) -> Result<Decimal, DecimalError> {
        if let Some(i) = n.as_i64() {
            return Ok(Decimal::from_i64(i));
        }
        if let Some(u) = n.as_u64() {
            return Ok(Decimal(i128::from(u) * SCALE));
        }
        match n.as_f64() {
            Some(f) => Decimal::from_f64(f),
            None => Err(DecimalError::Syntax),
        }
    }

    fn from_f64(f: f64) -> Result<Decimal, DecimalError> {
        if !f.is_finite() {
            return Err(DecimalError::OutOfRange);
        }
        // Below 2e6 the scaled float is within 0.5 of the intended integer, so
        // rounding recovers the decimal exactly; above, go through the text.
        if f.abs() < 2.0e6 {
            return Ok(Decimal((f * SCALE as f64).round() as i128));
        }
        Decimal::parse(&format!("{f}"))
    }

    /// Parses `-12.50`, `3`, `1e3`, `2.5E-2`; more than 9 fraction digits
    /// are rounded half away from zero.
    pub fn parse(text: &str) -> Result<Decimal, DecimalError> {
        Decimal::parse_with(text, true)
    }

    /// Like [`Decimal::parse`], but a value that would need rounding is an
    /// error: what an event carries is kept exactly or refused.
    pub fn parse_exact(text: &str) -> Result<Decimal, DecimalError> {
        Decimal::parse_with(text, false)
    }

    fn parse_with(text: &str, round: bool) -> Result<Decimal, DecimalError> {
        let text = text.trim();
        let (negative, body) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match body.find(['e', 'E']) {
            Some(i) => (&body[..i], exponent(&body[i + 1..])?),
            None => (body, 0),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        if (int_part.is_empty() && frac_part.is_empty())
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(DecimalError::Syntax);
        }
        // digits * 10^(exponent - frac_len), then scaled by 10^9. In i64:
        // the exponent is clamped far inside it, so this never overflows.
        let digits: String = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        let shift = exponent - frac_part.len() as i64 + i64::from(SCALE_DIGITS);
        let mut value: i128 = 0;
        // Digits kept before the decimal point of the scaled value (negative:
        // the first significant digit lies that far below a nano unit).
        let keep = digits.len() as i64 + shift.min(0);
        let significant = if shift >= 0 {
            digits
        } else {
            &digits[..usize::try_from(keep).unwrap_or(0)]
        };
        for b in significant.bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(b - b'0')))
                .ok_or(DecimalError::OutOfRange)?;
        }
        // Zero stays zero however large the exponent (and must not loop on it).
        if shift >= 0 && value != 0 {
            for _ in 0..shift {
                value = value.checked_mul(10).ok_or(DecimalError::OutOfRange)?;
            }
        } else {
            let dropped_at = significant.len();
            if !round && digits.as_bytes()[dropped_at..].iter().any(|&b| b != b'0') {
                return Err(DecimalError::TooPrecise);
            }
            // Round half away from zero on the first dropped digit; when the
            // first significant digit lies further down, it rounds to zero.
            if keep >= 0
                && let Some(&first_dropped) = digits.as_bytes().get(dropped_at)
                && first_dropped >= b'5'
            {
                value = value.checked_add(1).ok_or(DecimalError::OutOfRange)?;
            }
        }
        if value > i128::MAX / 10 {
            return Err(DecimalError::OutOfRange);
        }
        Ok(Decimal(if negative { -value } else { value }))
    }

    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        self.0.checked_add(other.0).map(Decimal)
    }

    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        self.0.checked_sub(other.0).map(Decimal)
    }

    /// Nearest float, for JSON output.
    pub fn to_f64(self) -> f64 {
        // Through the exact text, so that 0.3 prints as 0.3.
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// As a JSON number: an integer when whole, else the nearest float.
    pub fn to_json(self) -> serde_json::Value {
        if self.0 % SCALE == 0
            && let Ok(i) = i64::try_from(self.0 / SCALE)
        {
            return serde_json::Value::from(i);
        }
        serde_json::Number::from_f64(self.to_f64())
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    }
}

/// Exponents are clamped to this magnitude: anything beyond is far outside
/// the decimal's range (or below its precision) either way, and the clamp
/// keeps the caller's arithmetic inside i64.
const EXPONENT_CLAMP: i64 = i64::MAX / 4;

/// An exponent's value, clamped to ±[`EXPONENT_CLAMP`].
fn exponent(text: &str) -> Result<i64, DecimalError> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecimalError::Syntax);
    }
    let magnitude = digits
        .parse::<i64>()
        .map_or(EXPONENT_CLAMP, |e| e.min(EXPONENT_CLAMP));
    Ok(if negative { -magnitude } else { magnitude })
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let abs = self.0.unsigned_abs();
        let frac = (abs % SCALE as u128) as u64;
        write_units(f, self.0 < 0, abs / SCALE as u128, frac)
    }
}

/// Writes whole units and a fraction in nano units (below 10^9) with the
/// fraction's trailing zeros cut: how decimals and sums are printed.
pub(crate) fn write_units(
    f: &mut fmt::Formatter<'_>,
    negative: bool,
    int: impl fmt::Display,
    frac: u64,
) -> fmt::Result {
    let sign = if negative { "-" } else { "" };
    if frac == 0 {
        write!(f, "{sign}{int}")
    } else {
        let frac = format!("{frac:09}");
        write!(f, "{sign}{int}.{}", frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints_exactly() {
        for (text, shown) in [
            ("12.50", "12.5"),
            ("-0.1", "-0.1"),
            ("1e3", "1000"),
            ("2.5E-2", "0.025"),
            ("0.0000000004", "0"),
            ("0.0000000005", "0.000000001"),
            ("007", "7"),
        ] {
            assert_eq!(
                Decimal::parse(text).expect(text).to_string(),
                shown,
                "{text}"
            );
        }
        assert_eq!(Decimal::parse("1.2.3"), Err(DecimalError::Syntax));
        assert_eq!(Decimal::parse("abc"), Err(DecimalError::Syntax));
        assert_eq!(Decimal::parse(""), Err(DecimalError::Syntax));
        assert_eq!(Decimal::parse("1e40"), Err(DecimalError::OutOfRange));
    }

    #[test]
    fn exponents_at_and_beyond_the_ends_of_i32_are_never_zero() {
        for text in [
            "1e2147483647",
            "1e2147483638",
            "9e2147483647",
            "1.5e2147483647",
            "1e2147483648",
            "1e9223372036854775807",
            "1e99999999999999999999999",
        ] {
            assert_eq!(
                Decimal::parse(text),
                Err(DecimalError::OutOfRange),
                "{text}"
            );
            assert_eq!(
                Decimal::parse_exact(text),
                Err(DecimalError::OutOfRange),
                "{text}"
            );
        }
        for text in [
            "5e-2147483648",
            "1.00000000000000000001e-2147483648",
            "9e-99999999999999999999",
        ] {
            assert_eq!(Decimal::parse(text), Ok(Decimal::ZERO), "rounds: {text}");
            assert_eq!(
                Decimal::parse_exact(text),
                Err(DecimalError::TooPrecise),
                "{text}"
            );
        }
        // Zero is zero whatever its exponent.
        for text in [
            "0e2147483647",
            "0.000e99999999999999999999",
            "0e-2147483648",
        ] {
            assert_eq!(Decimal::parse_exact(text), Ok(Decimal::ZERO), "{text}");
        }
    }

    #[test]
    fn digits_far_below_a_nano_round_to_zero() {
        assert_eq!(Decimal::parse("5e-20"), Ok(Decimal::ZERO));
        assert_eq!(Decimal::parse("9e-11"), Ok(Decimal::ZERO));
        assert_eq!(Decimal::parse("5e-10").map(|d| d.to_nanos()), Ok(1));
    }

    #[test]
    fn float_sums_are_exact() {
        let tenth =
            Decimal::from_json(&serde_json::Number::from_f64(0.1).expect("finite")).expect("ok");
        let two =
            Decimal::from_json(&serde_json::Number::from_f64(0.2).expect("finite")).expect("ok");
        let sum = tenth.checked_add(two).expect("no overflow");
        assert_eq!(sum, Decimal::parse("0.3").expect("ok"));
        assert_eq!(sum.to_json(), serde_json::json!(0.3));
        assert_eq!(Decimal::from_i64(4).to_json(), serde_json::json!(4));
    }

    proptest! {
        #[test]
        fn cents_round_trip_through_floats(cents in -10_000_000_000i64..10_000_000_000i64) {
            let text = format!("{}.{:02}", cents / 100, (cents % 100).abs());
            let text = if cents < 0 && cents / 100 == 0 { format!("-{text}") } else { text };
            let exact = Decimal::parse(&text).expect("parses");
            let f: f64 = text.parse().expect("float");
            let via_json = Decimal::from_json(&serde_json::Number::from_f64(f).expect("finite")).expect("ok");
            prop_assert_eq!(exact, via_json);
        }
    }
}
