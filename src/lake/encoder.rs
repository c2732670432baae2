//! Parquet encoding of one partition's rows, readable by Athena engine v3, Trino,
//! pyarrow and DuckDB.
//!
//! - ZSTD: smaller than Snappy for JSON-heavy columns; Athena v3 reads both.
//! - Dictionary encoding where values repeat (names, subtypes); not for UUIDs and
//!   payloads, which are unique and would only fill a dictionary to fall back.
//! - Rows sorted by `created_at` and declared so in the metadata: min/max statistics
//!   per column chunk then let engines skip row groups on time filters.
//! - No page index (column or offset index): arrow-rs issue 10316 saw Trino and
//!   Athena return zero rows from parquet-rs files with page indexes.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringBuilder, TimestampMillisecondArray};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use uuid::Uuid;

use crate::core::timestamp::EventTime;
use crate::lake::schema;

/// Rows per row group: large groups scan best; files are bounded by the writer's
/// partition buffer long before this.
const ROW_GROUP_ROWS: usize = 1 << 20;
/// ZSTD level: 3 is zstd's default, a good ratio at a fast write speed.
const ZSTD_LEVEL: i32 = 3;

/// A failure to encode a file (a bug or resource exhaustion, not bad input).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("building Arrow arrays")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("writing Parquet")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// One row as the writer keeps it until its partition is flushed.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub uuid: Uuid,
    pub name: &'a str,
    pub subtype: Option<&'a str>,
    pub time: EventTime,
    pub payload: &'a str,
}

/// The writer properties of every lake file (the compactor's too).
pub(crate) fn properties() -> WriterProperties {
    let sorted_by_created_at = SortingColumn { column_idx: 3, descending: false, nulls_first: false };
    let no_dictionary = ["event_uuid", "payload", "created_datetime", "created_ts"];
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_offset_index_disabled(true)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_sorting_columns(Some(vec![sorted_by_created_at]))
        .set_created_by(format!("eventlake {}", env!("CARGO_PKG_VERSION")));
    for column in no_dictionary {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    builder.build()
}

/// Encodes `rows`, sorted here by creation time (stable, so equal times keep input
/// order), as one Parquet file; `ingested_at_millis` is every row's `ingested_at`
/// (one staged object, or one ingest run).
pub fn encode(rows: &mut [Row<'_>], ingested_at_millis: i64) -> Result<Vec<u8>, EncodeError> {
    rows.sort_by_key(|row| row.time.millis());
    let batch = record_batch(rows, ingested_at_millis)?;
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema::arrow_schema(), Some(properties()))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(bytes)
}

/// The rows as one batch of the lake's file columns (the `--where` of `eventlake tail` evaluates on it too).
pub fn record_batch(rows: &[Row<'_>], ingested_at_millis: i64) -> Result<RecordBatch, EncodeError> {
    let text_bytes = |f: fn(&Row) -> usize| rows.iter().map(f).sum::<usize>();
    let mut uuids = StringBuilder::with_capacity(rows.len(), rows.len() * 36);
    let mut names = StringBuilder::with_capacity(rows.len(), text_bytes(|r| r.name.len()));
    let mut subtypes =
        StringBuilder::with_capacity(rows.len(), text_bytes(|r| r.subtype.map_or(0, str::len)));
    let mut datetimes = StringBuilder::with_capacity(rows.len(), rows.len() * 24);
    let mut payloads = StringBuilder::with_capacity(rows.len(), text_bytes(|r| r.payload.len()));
    let mut uuid_text = Uuid::encode_buffer();
    let mut datetime = Vec::with_capacity(24);
    for row in rows {
        uuids.append_value(row.uuid.hyphenated().encode_lower(&mut uuid_text));
        names.append_value(row.name);
        subtypes.append_option(row.subtype);
        datetime.clear();
        row.time.write_created_datetime(&mut datetime);
        datetimes.append_value(std::str::from_utf8(&datetime).unwrap_or_default());
        payloads.append_value(row.payload);
    }
    let seconds: Int64Array = rows.iter().map(|row| row.time.seconds()).collect::<Vec<_>>().into();
    let created =
        TimestampMillisecondArray::from(rows.iter().map(|row| row.time.millis()).collect::<Vec<_>>())
            .with_timezone(schema::TIMEZONE);
    let ingested =
        TimestampMillisecondArray::from(vec![ingested_at_millis; rows.len()]).with_timezone(schema::TIMEZONE);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(uuids.finish()),
        Arc::new(names.finish()),
        Arc::new(subtypes.finish()),
        Arc::new(seconds),
        Arc::new(datetimes.finish()),
        Arc::new(payloads.finish()),
        Arc::new(created),
        Arc::new(ingested),
    ];
    Ok(RecordBatch::try_new(schema::arrow_schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn rows_come_back_sorted_by_time_with_the_contract_columns() {
        let time = |text| EventTime::from_json_number(text).unwrap();
        let mut rows = vec![
            Row {
                uuid: Uuid::from_u128(2),
                name: "a:b",
                subtype: Some("b"),
                time: time("20.5"),
                payload: "{}",
            },
            Row {
                uuid: Uuid::from_u128(1),
                name: "a",
                subtype: None,
                time: time("10"),
                payload: r#"{"x":1.50}"#,
            },
        ];
        let bytes = encode(&mut rows, 1_700_000_000_123).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes.clone())).unwrap();
        let metadata = reader.metadata().clone();
        let batch = reader.build().unwrap().next().unwrap().unwrap();
        assert_eq!(batch.schema(), schema::arrow_schema());
        let strings = |index: usize| batch.column(index).as_string::<i32>().clone();
        assert_eq!(strings(0).value(0), "00000000-0000-0000-0000-000000000001");
        assert_eq!(strings(1).value(1), "a:b");
        assert!(strings(2).is_null(0));
        assert_eq!(batch.column(3).as_primitive::<Int64Type>().values(), &[10, 20]);
        assert_eq!(strings(4).value(1), "1970-01-01T00:00:20.500Z");
        assert_eq!(strings(5).value(0), r#"{"x":1.50}"#);
        let created = batch.column(6).as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        assert_eq!(created.values(), &[10_000, 20_500], "created_ts keeps the milliseconds");
        let ingested = batch.column(7).as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        assert_eq!(ingested.values(), &[1_700_000_000_123; 2]);
        // Parquet's logical type: milliseconds, adjusted to UTC (what Athena reads as timestamp).
        let column = metadata.file_metadata().schema_descr().column(7);
        assert_eq!(
            column.logical_type_ref(),
            Some(&parquet::basic::LogicalType::timestamp(true, parquet::basic::TimeUnit::MILLIS))
        );
        // No page index, statistics per chunk, declared sort order.
        let group = metadata.row_group(0);
        assert!(group.column(0).offset_index_offset().is_none());
        assert!(group.column(0).column_index_offset().is_none());
        assert!(group.column(3).statistics().is_some());
        assert_eq!(group.sorting_columns().map(Vec::len), Some(1));
        assert!(std::str::from_utf8(&bytes[..4]).unwrap() == "PAR1");
    }
}
