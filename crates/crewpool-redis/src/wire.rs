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
    /// The producer's reply channel, when it waits for the job's result.
    #[serde(skip_serializing_if = "Option::is_none")]
    reply: Option<&'a str>,
    /// Headers (a W3C `traceparent`, ...), when the producer set any.
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<&'a Headers>,
}

/// A job's headers: name → value (e.g. `traceparent` → `00-<trace id>-<span id>-01`).
pub type Headers = std::collections::BTreeMap<String, String>;

/// The fields of an envelope an inspector reads besides the job.
#[derive(Deserialize, Default)]
pub(crate) struct Meta {
    /// When the producer enqueued it (ms since the Unix epoch).
    pub(crate) at: Option<u64>,
    /// The start deadline (ms since the Unix epoch, Redis clock).
    pub(crate) start_by: Option<u64>,
    /// The uniqueness key it holds.
    pub(crate) unique: Option<String>,
    /// The periodic schedule that made it.
    pub(crate) schedule: Option<String>,
    /// The tick of that schedule (ms since the Unix epoch).
    pub(crate) tick: Option<u64>,
}

/// What a worker reads from an envelope besides the job: the options the scripts act on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Extras {
    /// The start deadline (ms since the Unix epoch, Redis clock).
    pub(crate) start_by: Option<u64>,
    /// The uniqueness key the job holds.
    pub(crate) unique: Option<String>,
    /// The producer's reply channel, when it waits for the result.
    pub(crate) reply: Option<String>,
    /// The producer's headers.
    pub(crate) headers: Option<Headers>,
}

#[derive(Deserialize)]
struct Incoming<J> {
    v: u32,
    job: J,
    #[serde(default)]
    start_by: Option<u64>,
    #[serde(default)]
    unique: Option<String>,
    #[serde(default)]
    reply: Option<String>,
    #[serde(default)]
    headers: Option<Headers>,
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// Encodes `job` as a version-1 envelope stamped with the time now,
/// `{"v":1,"at":<ms>,"job":<job as JSON>}`, with the producer's reply channel
/// (`"reply":"<channel>"`) and headers (`"headers":{...}`) when given.
pub(crate) fn encode_with<J: Serialize>(
    job: &J,
    max: usize,
    reply: Option<&str>,
    headers: Option<&Headers>,
) -> Result<Vec<u8>, Error> {
    encode_full(job, crate::registry::now_ms(), max, reply, headers)
}

#[cfg(test)]
fn encode_at<J: Serialize>(
    job: &J,
    at: u64,
    max: usize,
    reply: Option<&str>,
) -> Result<Vec<u8>, Error> {
    encode_full(job, at, max, reply, None)
}

fn encode_full<J: Serialize>(
    job: &J,
    at: u64,
    max: usize,
    reply: Option<&str>,
    headers: Option<&Headers>,
) -> Result<Vec<u8>, Error> {
    let bytes = serde_json::to_vec(&Outgoing {
        v: ENVELOPE_VERSION,
        at,
        job,
        reply,
        headers,
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
    decode_with_extras(bytes).map(|(job, _)| job)
}

/// Decodes an envelope and the options a worker acts on (start deadline, uniqueness
/// key), or says why it cannot be (the dead-letter reason).
pub(crate) fn decode_with_extras<J: DeserializeOwned>(bytes: &[u8]) -> Result<(J, Extras), String> {
    match serde_json::from_slice::<Incoming<J>>(bytes) {
        Ok(envelope) if envelope.v == ENVELOPE_VERSION => Ok((
            envelope.job,
            Extras {
                start_by: envelope.start_by,
                unique: envelope.unique,
                reply: envelope.reply,
                headers: envelope.headers,
            },
        )),
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
    meta(envelope).at
}

/// The envelope's fields besides the job, as far as they parse.
pub(crate) fn meta(envelope: &[u8]) -> Meta {
    serde_json::from_slice::<Meta>(envelope).unwrap_or_default()
}

/// The most priority levels: 0 (the default, `pending`) to 9.
pub(crate) const LEVELS: usize = 10;

/// The largest job id: ids are 1 to 2^53 − 1, so they are exact in every language's
/// numbers (JavaScript's `Number.MAX_SAFE_INTEGER`, Lua's doubles).
pub(crate) const MAX_ID: u64 = (1 << 53) - 1;

/// A job record as Redis keeps it: `<id>|<attempt>|<envelope>`, the attempt being the
/// number of the job's next delivery (1 for a new job). Outside its level's pending list
/// (leased, delayed, scheduled) a record of priority level 1 to 9 carries the prefix
/// `<level>:`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    /// The priority level (0 without a prefix).
    pub(crate) level: u8,
    pub(crate) id: u64,
    pub(crate) attempt: u32,
    pub(crate) envelope: &'a [u8],
}

impl<'a> Record<'a> {
    /// Splits a record and checks it against the documented format (the same checks,
    /// with the same reasons, as `parse_record` in `lua/dead.lua`): decimal id from 1
    /// to 2^53 − 1, decimal attempt from 1 to 2^32 − 1, an envelope of at most
    /// `max_envelope` bytes. Returns why not (a dead-letter reason).
    pub(crate) fn parse(record: &'a [u8], max_envelope: usize) -> Result<Self, String> {
        let (level, record) = split_level(record);
        let mut parts = record.splitn(3, |&byte| byte == b'|');
        let (Some(id), Some(attempt), Some(envelope)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(MALFORMED.to_owned());
        };
        if !is_digits(id) || !is_digits(attempt) {
            return Err(MALFORMED.to_owned());
        }
        let id_value = decimal(id).filter(|&id| (1..=MAX_ID).contains(&id));
        let Some(id) = id_value else {
            return Err(format!(
                "invalid job id {} (ids are 1 to 2^53 - 1)",
                preview(id)
            ));
        };
        let attempt_value = decimal(attempt)
            .and_then(|attempt| u32::try_from(attempt).ok())
            .filter(|&attempt| attempt >= 1);
        let Some(attempt) = attempt_value else {
            return Err(format!(
                "invalid attempt {} (attempts are 1 to 2^32 - 1)",
                preview(attempt)
            ));
        };
        if envelope.len() > max_envelope {
            return Err(format!(
                "the envelope is {} bytes, over this worker's limit of {max_envelope} bytes (`RedisConfig::max_payload`)",
                envelope.len()
            ));
        }
        Ok(Record {
            level,
            id,
            attempt,
            envelope,
        })
    }

    /// What can be read from a record that may break the format, for listing a dead
    /// letter: its id (0 when there is none in range) and its envelope, if it has the
    /// two `|`-separated fields before one.
    pub(crate) fn salvage(record: &'a [u8]) -> (u64, Option<&'a [u8]>) {
        let (_, record) = split_level(record);
        let mut parts = record.splitn(3, |&byte| byte == b'|');
        let id = parts
            .next()
            .filter(|id| is_digits(id))
            .and_then(decimal)
            .filter(|&id| (1..=MAX_ID).contains(&id))
            .unwrap_or(0);
        let envelope = parts.next().and_then(|_| parts.next());
        (id, envelope)
    }
}

/// Splits the level prefix `<level>:` (one digit, 1 to 9) off a record; level 0 without.
pub(crate) fn split_level(record: &[u8]) -> (u8, &[u8]) {
    match record {
        [digit @ b'1'..=b'9', b':', rest @ ..] => (digit - b'0', rest),
        _ => (0, record),
    }
}

/// The reason for a record without the `<id>|<attempt>|` header.
const MALFORMED: &str = "malformed job record (expected <id>|<attempt>|<envelope>)";

/// Whether `digits` is a non-empty run of ASCII digits.
fn is_digits(digits: &[u8]) -> bool {
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// The value of a run of ASCII digits; `None` when it does not fit in 64 bits.
fn decimal(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0_u64, |n, &d| {
        n.checked_mul(10)?
            .checked_add(u64::from(d.checked_sub(b'0')?))
    })
}

/// A field of a record, shortened for a message.
fn preview(field: &[u8]) -> String {
    let text = String::from_utf8_lossy(field);
    match text.char_indices().nth(24) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    }
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
        let bytes = encode_at(&vec![1_u64, 2], 1_700_000_000_123, 100, None).unwrap();
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
        let (job, extras) =
            decode_with_extras::<u64>(br#"{"unique":"k","start_by":9,"v":1,"job":5}"#).unwrap();
        assert_eq!(job, 5);
        assert_eq!(
            extras,
            Extras {
                start_by: Some(9),
                unique: Some("k".to_owned()),
                reply: None,
                headers: None,
            }
        );
    }

    #[test]
    fn splits_records() {
        assert_eq!(
            Record::parse(br#"7:42|3|{"v":1,"job":"a|b"}"#, 100),
            Ok(Record {
                level: 7,
                id: 42,
                attempt: 3,
                envelope: br#"{"v":1,"job":"a|b"}"#,
            })
        );
        assert_eq!(
            Record::parse(br#"42|3|{"v":1,"job":"a|b"}"#, 100),
            Ok(Record {
                level: 0,
                id: 42,
                attempt: 3,
                envelope: br#"{"v":1,"job":"a|b"}"#,
            })
        );
        let max = Record::parse(b"9007199254740991|4294967295|{}", 2).unwrap();
        assert_eq!((max.id, max.attempt), (MAX_ID, u32::MAX));
        for (bad, reason) in [
            (&b"42"[..], "malformed"),
            (b"42|1", "malformed"),
            (b"|1|{}", "malformed"),
            (b"42||{}", "malformed"),
            (b"x|1|{}", "malformed"),
            (b"42|-1|{}", "malformed"),
            (b"0|1|{}", "invalid job id 0 "),
            (b"9007199254740992|1|{}", "invalid job id 9007199254740992 "),
            (
                b"99999999999999999999|1|{}",
                "invalid job id 99999999999999999999 ",
            ),
            (b"42|0|{}", "invalid attempt 0 "),
            (b"42|99999999999|{}", "invalid attempt 99999999999 "),
            (b"42|4294967296|{}", "invalid attempt 4294967296 "),
            (
                b"42|1|{\"v\":1}",
                "the envelope is 7 bytes, over this worker's limit of 4 bytes",
            ),
        ] {
            let error = Record::parse(bad, 4).unwrap_err();
            assert!(
                error.starts_with(reason),
                "{}: {error}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("{}|1|{{}}", "7".repeat(40));
        let error = Record::parse(long.as_bytes(), 10).unwrap_err();
        assert!(error.contains("7777...") && error.len() < 80, "{error}");

        assert_eq!(
            Record::salvage(b"903|99999999999|{}"),
            (903, Some(&b"{}"[..]))
        );
        assert_eq!(Record::salvage(b"0|1|{}"), (0, Some(&b"{}"[..])));
        assert_eq!(Record::salvage(b"garbage"), (0, None));
        assert_eq!(Record::salvage(b"3:8|1|{}"), (8, Some(&b"{}"[..])));
        assert_eq!(split_level(b"0:1|1|{}").0, 0, "level 0 has no prefix");
        let mut args: Vec<Vec<u8>> = Vec::new();
        write_record(&mut args, 7, br#"{"v":1,"job":5}"#);
        assert_eq!(args, [br#"7|1|{"v":1,"job":5}"#.to_vec()]);
    }

    #[test]
    fn enforces_the_size_limit() {
        match encode_at(&"x".repeat(100), 1, 50, None) {
            Err(Error::PayloadTooLarge { size, max: 50 }) => assert_eq!(size, 123),
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
    }
}
