//! The Confluent wire format: byte 0 is the magic byte 0, bytes 1-4 the
//! schema id (big-endian), then the encoded body.

use super::DecodeError;

/// The magic byte that opens every frame.
pub const MAGIC: u8 = 0;
/// Magic byte and schema id.
pub const HEADER_BYTES: usize = 5;

/// A message value split into its schema id and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub schema_id: u32,
    pub body: &'a [u8],
}

/// Splits a framed message; a wrong magic byte or a short frame is named.
pub fn unframe(bytes: &[u8]) -> Result<Frame<'_>, DecodeError> {
    let Some((&magic, rest)) = bytes.split_first() else {
        return Err(DecodeError::BadEncoding(
            "empty message: a framed event starts with magic byte 0 and a 4-byte schema id".into(),
        ));
    };
    if magic != MAGIC {
        return Err(DecodeError::BadEncoding(format!(
            "magic byte is {magic:#04x}, not 0x00: not written by a schema-registry serializer{}",
            if magic == b'{' {
                " (it looks like JSON)"
            } else {
                ""
            }
        )));
    }
    let (id, body) = rest.split_first_chunk::<4>().ok_or_else(|| {
        DecodeError::BadEncoding(format!(
            "frame is {} bytes: too short for the 4-byte schema id",
            bytes.len()
        ))
    })?;
    Ok(Frame {
        schema_id: u32::from_be_bytes(*id),
        body,
    })
}

/// The schema id of a framed message, if it is one.
pub fn schema_id(bytes: &[u8]) -> Option<u32> {
    unframe(bytes).ok().map(|f| f.schema_id)
}

/// A zig-zag varint long from the front of `input`, which moves past it:
/// Avro's ints and longs, and the Protobuf frame's message indexes.
pub fn read_long(input: &mut &[u8]) -> Result<i64, DecodeError> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let (&byte, rest) = input.split_first().ok_or_else(|| {
            DecodeError::BadEncoding("truncated: the input ends inside a number".into())
        })?;
        *input = rest;
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(DecodeError::BadEncoding(
        "a variable-length integer runs past 10 bytes".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_into_id_and_body() {
        let frame = unframe(&[0, 0, 0, 1, 2, 9, 8]).expect("frame");
        assert_eq!(frame.schema_id, 258);
        assert_eq!(frame.body, &[9, 8]);
        assert_eq!(unframe(&[0, 0, 0, 0, 7]).map(|f| f.body.len()), Ok(0));
    }

    #[test]
    fn bad_frames_say_what_is_wrong() {
        let said = |b: &[u8]| unframe(b).expect_err("bad").to_string();
        assert!(said(&[]).contains("empty"));
        assert!(said(b"{\"a\":1}").contains("looks like JSON"));
        assert!(said(&[1, 0, 0, 0, 1]).contains("0x01"));
        assert!(said(&[0, 0, 1]).contains("too short"));
    }
}
