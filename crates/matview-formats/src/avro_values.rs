//! How each Avro value is written as JSON. Decimals are written as their
//! exact digits (a JSON number token, which the engine reads exactly);
//! dates and times as ISO 8601 / RFC 3339 text in UTC; bytes and fixed as
//! base64; a duration as an object of its three counts.

use std::io::Write;

use base64::Engine;
use num_bigint::BigInt;

use super::DecodeError;
use super::wire::read_long;

fn bad(detail: impl Into<String>) -> DecodeError {
    DecodeError::BadEncoding(detail.into())
}

pub fn integer(v: i64, out: &mut Vec<u8>) {
    let _ = write!(out, "{v}");
}

/// A finite float as the shortest text that reads back to it (at the
/// width it was written in); NaN and infinities, which JSON has no number
/// for, as text.
pub fn float32(v: f32, out: &mut Vec<u8>) {
    if v.is_finite() {
        let _ = write!(out, "{v:?}");
    } else {
        string(&v.to_string(), out);
    }
}

pub fn float64(v: f64, out: &mut Vec<u8>) {
    if v.is_finite() {
        let _ = write!(out, "{v:?}");
    } else {
        string(&v.to_string(), out);
    }
}

pub fn string(s: &str, out: &mut Vec<u8>) {
    // Writing JSON text into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

pub fn base64(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .as_bytes(),
    );
    out.push(b'"');
}

/// A decimal: big-endian two's-complement unscaled digits and the schema's
/// scale, written exactly (`-12.3400` for -123400 at scale 4).
/// Integer digits a decimal may have: JSON readers (the engine's among them)
/// take a number up to about 1.8e308, so a longer one would make the event
/// unreadable; it is a bad encoding instead (no schema's precision is near it).
const MAX_INTEGER_DIGITS: usize = 300;

pub fn decimal(unscaled: &[u8], scale: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    decimal_times_ten_to(unscaled, scale, 0, out)
}

/// The decimal `unscaled` × 10^(`zeros` − `scale`).
fn decimal_times_ten_to(
    unscaled: &[u8],
    scale: usize,
    zeros: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    if unscaled.is_empty() {
        return Err(bad("a decimal has no bytes"));
    }
    let digits = if unscaled.len() <= 16 {
        // Sign-extend into an i128: the common case needs no big integer.
        let fill = if unscaled[0] & 0x80 != 0 { 0xff } else { 0 };
        let mut wide = [fill; 16];
        wide[16 - unscaled.len()..].copy_from_slice(unscaled);
        i128::from_be_bytes(wide).to_string()
    } else {
        BigInt::from_signed_bytes_be(unscaled).to_string()
    };
    // Zero times any power of ten is written "0": "0" and then zeros is no JSON number.
    let zeros = if digits == "0" { 0 } else { zeros };
    let integer_digits = digits.trim_start_matches('-').len().saturating_sub(scale) + zeros;
    if integer_digits > MAX_INTEGER_DIGITS {
        return Err(bad(format!(
            "a decimal of {integer_digits} integer digits (at most {MAX_INTEGER_DIGITS} are read)"
        )));
    }
    write_scaled(&digits, scale, out);
    out.extend(std::iter::repeat_n(b'0', zeros));
    Ok(())
}

fn write_scaled(digits: &str, scale: usize, out: &mut Vec<u8>) {
    let (sign, magnitude) = match digits.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", digits),
    };
    out.extend_from_slice(sign.as_bytes());
    if scale == 0 {
        out.extend_from_slice(magnitude.as_bytes());
        return;
    }
    if magnitude.len() > scale {
        let (whole, fraction) = magnitude.split_at(magnitude.len() - scale);
        out.extend_from_slice(whole.as_bytes());
        out.push(b'.');
        out.extend_from_slice(fraction.as_bytes());
    } else {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - magnitude.len()));
        out.extend_from_slice(magnitude.as_bytes());
    }
}

/// The `big-decimal` logical type: inside the bytes, the unscaled digits
/// (Avro bytes) and then the scale (an Avro long, possibly negative).
pub fn big_decimal(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let mut rest = bytes;
    let len = read_long(&mut rest)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|n| *n <= rest.len())
        .ok_or_else(|| {
            bad(format!(
                "big-decimal digits of length {len} in {} bytes",
                rest.len()
            ))
        })?;
    let (unscaled, mut tail) = rest.split_at(len);
    let scale = read_long(&mut tail)?;
    if !tail.is_empty() || scale.unsigned_abs() > 1_000 {
        return Err(bad(format!("big-decimal scale {scale} or trailing bytes")));
    }
    if scale >= 0 {
        return decimal(unscaled, scale as usize, out);
    }
    decimal_times_ten_to(unscaled, 0, scale.unsigned_abs() as usize, out)
}

pub fn uuid(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let Ok(bytes) = <&[u8; 16]>::try_from(bytes) else {
        return Err(bad(format!("a uuid is 16 bytes, not {}", bytes.len())));
    };
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let _ = write!(
        out,
        "\"{}-{}-{}-{}-{}\"",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    Ok(())
}

/// Days since 1970-01-01 as `"YYYY-MM-DD"`.
pub fn date(days: i32, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let day = jiff::Timestamp::from_second(i64::from(days) * 86_400)
        .map_err(|_| bad(format!("date {days} days from 1970-01-01 is out of range")))?;
    let _ = write!(out, "\"{}\"", day.to_zoned(jiff::tz::TimeZone::UTC).date());
    Ok(())
}

/// Time since midnight (in units of 1/`per_second` s) as `"HH:MM:SS[.fff]"`.
pub fn time_of_day(units: i64, per_second: i64, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    if !(0..86_400 * per_second).contains(&units) {
        return Err(bad(format!("time of day {units} is not within a day")));
    }
    let nanos = units * (1_000_000_000 / per_second);
    let time = jiff::civil::Time::MIN
        .checked_add(jiff::SignedDuration::from_nanos(nanos))
        .map_err(|e| bad(format!("time of day {units}: {e}")))?;
    let _ = write!(out, "\"{time}\"");
    Ok(())
}

/// Nanoseconds since the epoch as RFC 3339 in UTC (`…Z`), or as a local
/// date-time without an offset.
pub fn timestamp(nanos: i128, utc: bool, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let at = jiff::Timestamp::from_nanosecond(nanos).map_err(|_| {
        bad(format!(
            "timestamp {nanos} ns from the epoch is out of range"
        ))
    })?;
    if utc {
        let _ = write!(out, "\"{at}\"");
    } else {
        let _ = write!(
            out,
            "\"{}\"",
            at.to_zoned(jiff::tz::TimeZone::UTC).datetime()
        );
    }
    Ok(())
}

/// Avro's duration: three little-endian unsigned ints.
pub fn duration(bytes: &[u8], out: &mut Vec<u8>) {
    let part = |i: usize| {
        bytes
            .get(i * 4..i * 4 + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_le_bytes)
    };
    let _ = write!(
        out,
        "{{\"months\":{},\"days\":{},\"millis\":{}}}",
        part(0),
        part(1),
        part(2)
    );
}
