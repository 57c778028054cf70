//! The envelope and the job record on the wire, and reading script replies.

use redis::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The envelope version this crate writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

#[derive(Serialize)]
struct Outgoing<'a, J> {
    v: u32,
    /// When the producer enqueued the job (ms since the Unix epoch, its clock).
    at: u64,
    job: &'a J,
}

/// The fields of an envelope an inspector reads besides the job.
#[derive(Deserialize)]
struct Meta {
    at: Option<u64>,
}

#[derive(Deserialize)]
struct Incoming<J> {
    v: u32,
    job: J,
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// Encodes `job` as a version-1 envelope stamped with the time now:
/// `{"v":1,"at":<ms>,"job":<job as JSON>}`.
pub(crate) fn encode<J: Serialize>(job: &J, max: usize) -> Result<Vec<u8>, Error> {
    encode_at(job, crate::registry::now_ms(), max)
}

fn encode_at<J: Serialize>(job: &J, at: u64, max: usize) -> Result<Vec<u8>, Error> {
    let bytes = serde_json::to_vec(&Outgoing {
        v: ENVELOPE_VERSION,
        at,
        job,
    })
    .map_err(Error::Encode)?;
    if bytes.len() > max {
        return Err(Error::PayloadTooLarge {
            size: bytes.len(),
            max,
        });
    }
    Ok(bytes)
}

/// Decodes an envelope, or says why it cannot be (the dead-letter reason).
pub(crate) fn decode<J: DeserializeOwned>(bytes: &[u8]) -> Result<J, String> {
    match serde_json::from_slice::<Incoming<J>>(bytes) {
        Ok(envelope) if envelope.v == ENVELOPE_VERSION => Ok(envelope.job),
        Ok(envelope) => Err(unsupported(envelope.v)),
        Err(error) => match serde_json::from_slice::<VersionOnly>(bytes) {
            Ok(envelope) if envelope.v != ENVELOPE_VERSION => Err(unsupported(envelope.v)),
            _ => Err(format!("undecodable envelope: {error}")),
        },
    }
}

/// When the job was enqueued (the envelope's optional `at`, ms since the Unix epoch);
/// `None` when the envelope has none or does not parse.
pub(crate) fn enqueued_at(envelope: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Meta>(envelope).ok()?.at
}

/// A job record as Redis keeps it: `<id>|<attempt>|<envelope>`, the attempt being the
/// number of the job's next delivery (1 for a new job).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub(crate) id: u64,
    pub(crate) attempt: u32,
    pub(crate) envelope: &'a [u8],
}

impl<'a> Record<'a> {
    /// Splits a record; `None` when it is not `<id>|<attempt>|<envelope>` with decimal
    /// numbers.
    pub(crate) fn parse(record: &'a [u8]) -> Option<Self> {
        let mut parts = record.splitn(3, |&byte| byte == b'|');
        let id = decimal(parts.next()?)?;
        let attempt = u32::try_from(decimal(parts.next()?)?).ok()?;
        let envelope = parts.next()?;
        Some(Record {
            id,
            attempt,
            envelope,
        })
    }
}

/// Parses a non-empty run of ASCII digits.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0_u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// Writes the record of a new job (attempt 1) as one command argument.
pub(crate) fn write_record(out: &mut impl redis::RedisWrite, id: u64, envelope: &[u8]) {
    use std::io::Write;
    let mut arg = out.writer_for_next_arg();
    // Writing to a command buffer cannot fail.
    let _ = write!(arg, "{id}|1|");
    let _ = arg.write_all(envelope);
}

fn unsupported(version: u32) -> String {
    format!("unsupported envelope version {version} (this worker reads version {ENVELOPE_VERSION})")
}

/// Reads an integer reply (Redis may send numbers as strings).
pub(crate) fn int(value: &Value) -> Result<i64, Error> {
    match value {
        Value::Int(n) => Ok(*n),
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| Error::Protocol(format!("expected an integer, got {value:?}"))),
        Value::SimpleString(text) => text
            .parse()
            .map_err(|_| Error::Protocol(format!("expected an integer, got {text:?}"))),
        other => Err(Error::Protocol(format!(
            "expected an integer, got {other:?}"
        ))),
    }
}

/// Reads a non-negative integer reply.
pub(crate) fn uint(value: &Value) -> Result<u64, Error> {
    let n = int(value)?;
    u64::try_from(n)
        .map_err(|_| Error::Protocol(format!("expected a non-negative integer, got {n}")))
}

/// Reads an array reply.
pub(crate) fn array(value: Value) -> Result<Vec<Value>, Error> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(Error::Protocol(format!("expected an array, got {other:?}"))),
    }
}

/// Reads a bulk-string reply.
pub(crate) fn bytes(value: Value) -> Result<Vec<u8>, Error> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.into_bytes()),
        other => Err(Error::Protocol(format!("expected a string, got {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_explains_failures() {
        let bytes = encode_at(&vec![1_u64, 2], 1_700_000_000_123, 100).unwrap();
        assert_eq!(bytes, br#"{"v":1,"at":1700000000123,"job":[1,2]}"#);
        assert_eq!(enqueued_at(&bytes), Some(1_700_000_000_123));
        assert_eq!(enqueued_at(br#"{"v":1,"job":5}"#), None);
        assert_eq!(decode::<Vec<u64>>(&bytes).unwrap(), vec![1, 2]);
        assert!(
            decode::<u64>(b"not json")
                .unwrap_err()
                .contains("undecodable")
        );
        assert!(
            decode::<u64>(br#"{"v":1,"job":"x"}"#)
                .unwrap_err()
                .contains("undecodable")
        );
        assert!(
            decode::<u64>(br#"{"v":2,"job":"x"}"#)
                .unwrap_err()
                .contains("version 2")
        );
        assert!(
            decode::<u64>(br#"{"v":2,"job":5}"#)
                .unwrap_err()
                .contains("version 2")
        );
        // Unknown fields are for later versions of producers: ignored.
        assert_eq!(decode::<u64>(br#"{"v":1,"job":5,"trace":"x"}"#).unwrap(), 5);
    }

    #[test]
    fn splits_records() {
        assert_eq!(
            Record::parse(br#"42|3|{"v":1,"job":"a|b"}"#),
            Some(Record {
                id: 42,
                attempt: 3,
                envelope: br#"{"v":1,"job":"a|b"}"#,
            })
        );
        for bad in [
            &b"42"[..],
            b"42|1",
            b"|1|{}",
            b"42||{}",
            b"x|1|{}",
            b"42|-1|{}",
            b"42|99999999999|{}",
            b"99999999999999999999|1|{}",
        ] {
            assert_eq!(Record::parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let mut args: Vec<Vec<u8>> = Vec::new();
        write_record(&mut args, 7, br#"{"v":1,"job":5}"#);
        assert_eq!(args, [br#"7|1|{"v":1,"job":5}"#.to_vec()]);
    }

    #[test]
    fn enforces_the_size_limit() {
        match encode_at(&"x".repeat(100), 1, 50) {
            Err(Error::PayloadTooLarge { size, max: 50 }) => assert_eq!(size, 123),
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
    }
}
