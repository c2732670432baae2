-- The events table over the lake: the Parquet files under events/, partitioned
-- by event_type and created_date. Generated from the one schema source by
-- `eventlake schema --format athena-ddl` (a test fails if it drifts). Terraform
-- creates this table; to create it by hand, replace LAKE_BUCKET with the lake's
-- bucket (and prefix), then register partitions with `eventlake catalog repair`.
CREATE EXTERNAL TABLE IF NOT EXISTS `events` (
  `event_uuid`       string COMMENT 'canonical lowercase hyphenated UUID',
  `event_name`       string COMMENT 'event name as received',
  `event_subtype`    string COMMENT 'second part of event_name, null when absent or empty',
  `created_at`       bigint COMMENT 'Unix seconds of created_datetime, floored',
  `created_datetime` string COMMENT 'ISO 8601 UTC creation time, milliseconds when given',
  `payload`          string COMMENT 'compact JSON object of every other field, values exact',
  `created_ts`       timestamp COMMENT 'created_datetime as a timestamp, milliseconds, UTC; null in files written before it',
  `ingested_at`      timestamp COMMENT 'when the record reached the lake writer (staged object delivered, or ingest run started); null in files written before it'
)
PARTITIONED BY (
  `event_type`   string COMMENT 'first part of event_name',
  `created_date` string COMMENT 'UTC date of created_at, YYYY-MM-DD'
)
STORED AS PARQUET
LOCATION 's3://LAKE_BUCKET/events/'
TBLPROPERTIES ('parquet.compression' = 'ZSTD');
