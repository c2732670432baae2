//! Replaying records that did not reach the lake (CONTRACT section 5, `eventlake
//! replay`): the lines of Firehose's error output and of the lake's `_rejected/`
//! files decoded back into the records they hold, and the dedupe keys the lake
//! already holds, so that a replay adds only what the lake lacks.

use std::collections::HashSet;

use arrow::array::{Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::core::event::DedupeKey;
use crate::core::timestamp::EventTime;
use crate::lake::storage::{Storage, StorageError};

/// Where a replayable line keeps its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// In the line itself (Firehose's `rawData`, a rejection entry's `record` or
    /// `record_base64`, or the line when it is not a wrapper at all).
    Bytes(Vec<u8>),
    /// In a file of its own beside the rejection entry (a record too large to
    /// repeat there): its key relative to the lake that wrote it.
    Stored(String),
}

/// One line of a replay source, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayable {
    pub record: Held,
    /// Why it was refused before, as the source says (`errorCode: errorMessage`
    /// of Firehose, `code: reason` of the lake); `None` for a plain record.
    pub earlier: Option<String>,
}

/// A line that claims to be a wrapper and is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("a Firehose error record whose rawData is not a base64 string")]
    RawData,
    #[error("a rejection entry whose record_base64 is not base64")]
    RecordBase64,
    #[error("a rejection entry whose record_key is not a key under _rejected/")]
    RecordKey,
}

/// The fields of Firehose's error records and of the lake's rejection entries
/// that replay reads; a line with neither shape is a record itself.
#[derive(Deserialize)]
struct Wrapper<'a> {
    #[serde(rename = "rawData", borrow)]
    raw_data: Option<&'a RawValue>,
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
    #[serde(rename = "errorMessage")]
    error_message: Option<String>,
    code: Option<String>,
    reason: Option<String>,
    record: Option<String>,
    record_base64: Option<String>,
    record_key: Option<String>,
}

/// Decodes one line of a replay source: a Firehose error record (`rawData`
/// base64, `errorCode`, `errorMessage`), a rejection entry of the lake (`code`,
/// `reason` and `record`, `record_base64` or `record_key`), or anything else,
/// which is taken as a record itself (an event fixed by hand, or one that is
/// still invalid and will say why when validated).
pub fn decode_line(line: &[u8]) -> Result<Replayable, DecodeError> {
    let plain = || Replayable { record: Held::Bytes(line.to_vec()), earlier: None };
    let Ok(wrapper) = serde_json::from_slice::<Wrapper>(line) else {
        return Ok(plain());
    };
    if let Some(raw) = wrapper.raw_data {
        let text: &str = serde_json::from_str(raw.get()).map_err(|_| DecodeError::RawData)?;
        let bytes = base64_simd::STANDARD.decode_to_vec(text).map_err(|_| DecodeError::RawData)?;
        let earlier =
            [wrapper.error_code, wrapper.error_message].into_iter().flatten().collect::<Vec<_>>().join(": ");
        return Ok(Replayable { record: Held::Bytes(bytes), earlier: Some(earlier) });
    }
    let (Some(code), Some(reason)) = (wrapper.code, wrapper.reason) else {
        return Ok(plain());
    };
    let earlier = Some(format!("{code}: {reason}"));
    let record = match (wrapper.record, wrapper.record_base64, wrapper.record_key) {
        (Some(text), _, _) => Held::Bytes(text.into_bytes()),
        (None, Some(encoded), _) => {
            Held::Bytes(base64_simd::STANDARD.decode_to_vec(encoded).map_err(|_| DecodeError::RecordBase64)?)
        }
        (None, None, Some(key)) => {
            let safe = key.starts_with("_rejected/") && crate::lake::storage::validate_key(&key).is_ok();
            Held::Stored(if safe { key } else { return Err(DecodeError::RecordKey) })
        }
        (None, None, None) => return Ok(plain()),
    };
    Ok(Replayable { record, earlier })
}

/// Why the lake's keys could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("reading {key}: {source}")]
    Parquet { key: String, source: parquet::errors::ParquetError },
    #[error("reading {key}: {source}")]
    Arrow { key: String, source: arrow::error::ArrowError },
    #[error("{key} has no {column} string column: not a file of this lake")]
    Column { key: String, column: &'static str },
    #[error("{key} holds an event_uuid or created_datetime the writer never writes: {value:?}")]
    Value { key: String, value: String },
}

/// The dedupe keys the Parquet files directly in `directories` (partitions'
/// directories, or the locations a catalog gives them) hold.
pub async fn keys_in<S: Storage>(
    storage: &S,
    directories: impl IntoIterator<Item = String>,
) -> Result<HashSet<DedupeKey>, KeysError> {
    let mut keys = HashSet::new();
    for directory in directories {
        for name in storage.list(&directory, "").await? {
            if name.ends_with(".parquet") {
                let key = format!("{directory}/{name}");
                let bytes = storage.get(&key).await?;
                read_keys(bytes::Bytes::from(bytes), &key, &mut keys)?;
            }
        }
    }
    Ok(keys)
}

/// Adds the dedupe keys of one Parquet file (its `event_uuid` and
/// `created_datetime` columns) to `keys`.
fn read_keys(file: bytes::Bytes, key: &str, keys: &mut HashSet<DedupeKey>) -> Result<(), KeysError> {
    let parquet = |source| KeysError::Parquet { key: key.to_owned(), source };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet)?;
    let fields = builder.parquet_schema();
    let index = |column: &'static str| {
        (0..fields.num_columns())
            .find(|&i| fields.column(i).name() == column)
            .ok_or(KeysError::Column { key: key.to_owned(), column })
    };
    let mask = ProjectionMask::leaves(fields, [index("event_uuid")?, index("created_datetime")?]);
    for batch in builder.with_projection(mask).build().map_err(parquet)? {
        let batch = batch.map_err(|source| KeysError::Arrow { key: key.to_owned(), source })?;
        let column = |name: &'static str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or(KeysError::Column { key: key.to_owned(), column: name })
        };
        let (uuids, datetimes) = (column("event_uuid")?, column("created_datetime")?);
        for row in 0..batch.num_rows() {
            let (uuid, datetime) = (uuids.value(row), datetimes.value(row));
            let invalid = || KeysError::Value { key: key.to_owned(), value: format!("{uuid} {datetime}") };
            if uuids.is_null(row) || datetimes.is_null(row) {
                return Err(invalid());
            }
            let uuid = uuid::Uuid::parse_str(uuid).map_err(|_| invalid())?;
            let time = EventTime::parse_created_datetime(datetime).ok_or_else(invalid)?;
            keys.insert(DedupeKey::new(uuid, time));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firehose_error_records_give_back_their_raw_data() {
        let line = br#"{"attemptsMade":1,"arrivalTimestamp":1,"errorCode":"Lambda.ProcessingFailedStatus","errorMessage":"ProcessingFailed status set for record","rawData":"eyJhIjoxfQ==","lambdaArn":"arn"}"#;
        let decoded = decode_line(line).unwrap();
        assert_eq!(decoded.record, Held::Bytes(br#"{"a":1}"#.to_vec()));
        assert_eq!(
            decoded.earlier.as_deref(),
            Some("Lambda.ProcessingFailedStatus: ProcessingFailed status set for record")
        );
        assert_eq!(decode_line(br#"{"rawData":"%%%"}"#), Err(DecodeError::RawData));
        assert_eq!(decode_line(br#"{"rawData":7}"#), Err(DecodeError::RawData));
    }

    #[test]
    fn rejection_entries_give_back_their_record_however_it_was_kept() {
        let text = br#"{"source":"in","line":3,"code":"invalid_json","reason":"record is not valid JSON","record":"{\"a\":"}"#;
        assert_eq!(
            decode_line(text).unwrap(),
            Replayable {
                record: Held::Bytes(br#"{"a":"#.to_vec()),
                earlier: Some("invalid_json: record is not valid JSON".into())
            }
        );
        let binary = br#"{"source":"in","line":4,"code":"not_utf8","reason":"r","record_base64":"/w=="}"#;
        assert_eq!(decode_line(binary).unwrap().record, Held::Bytes(vec![0xff]));
        let stored = br#"{"source":"in","line":5,"code":"too_large","reason":"r","record_key":"_rejected/x-large-00000.record"}"#;
        assert_eq!(
            decode_line(stored).unwrap().record,
            Held::Stored("_rejected/x-large-00000.record".into())
        );
        let escape =
            br#"{"source":"in","line":5,"code":"too_large","reason":"r","record_key":"../../etc/passwd"}"#;
        assert_eq!(decode_line(escape), Err(DecodeError::RecordKey));
    }

    #[test]
    fn anything_else_is_a_record_itself() {
        for line in [
            &br#"{"event_uuid":"u","event_name":"a:b","created_at":1}"#[..],
            b"not json",
            b"[1,2]",
            b"{\"code\":1}",
        ] {
            assert_eq!(
                decode_line(line).unwrap(),
                Replayable { record: Held::Bytes(line.to_vec()), earlier: None }
            );
        }
    }
}
