-- events_unique: every event once, deduplicated across the whole lake.
--
-- The transform drops duplicates within a Firehose batch and the parquet-writer
-- within a staged object; a producer retry that lands in another batch reaches
-- the lake twice. This view keeps one row per dedupe key (event_uuid, created
-- time to the millisecond), the copy received first: the earliest ingested_at
-- (rows from files written before the column existed count as earliest; a tie
-- goes to the file whose path sorts first, and a file never holds a key twice).
-- That is the row compaction keeps, so the view gives the same answer over any
-- mix of compacted and uncompacted partitions, and a compacted partition needs
-- no re-dedupe. The time is compared as a time, not as text, because "...56Z"
-- and "...56.000Z" are the same instant.
--
-- Cost in Athena: a query on the view reads every column of the partitions it touches and
-- sorts those rows by key, so it scans the same bytes as the same query on
-- `events` with the same filters, plus the window's CPU. created_date follows
-- from the key and is in the window's PARTITION BY, so filters on it are applied
-- below the window and Athena still prunes partitions: always filter on
-- created_date. For heavy use, query compacted days on `events` directly.
--
-- Terraform creates this view in the lake's database from this file's SELECT
-- (terraform/catalog.tf); running the file in Athena replaces it with the same
-- view. `eventlake query` reads this file at start-up and runs the same rule (its
-- PARTITION BY and ORDER BY, with Athena's hidden column "$path" read as
-- DataFusion's input_file_name()) as an aggregate and a join: per key, the path of
-- the copy received first, and the key's copy in that file. DataFusion runs that
-- faster than the window, and a filter on event_type then reaches the scan of the
-- payloads, so locally a query on one type reads only that type's rows besides
-- every type's keys (src/query/unique_view.rs; a test checks it gives the rows of
-- this SELECT as written).
CREATE OR REPLACE VIEW events_unique AS
SELECT event_uuid, event_name, event_subtype, created_at, created_datetime, payload, created_ts, ingested_at,
       event_type, created_date
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY created_date, event_uuid, from_iso8601_timestamp(created_datetime)
            ORDER BY ingested_at NULLS FIRST, source_file
        ) AS copy_number
    FROM (SELECT *, "$path" AS source_file FROM events)
)
WHERE copy_number = 1
