-- events_unique: every event once, deduplicated across the whole lake.
--
-- The transform drops duplicates within a Firehose batch and the parquet-writer
-- within a staged object; a producer retry that lands in another batch reaches
-- the lake twice. This view keeps one row per (event_uuid, created time to the
-- millisecond): the key the transform dedupes on. The time is compared as a time,
-- not as text, because "...56Z" and "...56.000Z" are the same instant.
--
-- Cost: a query on the view reads every column of the partitions it touches and
-- sorts those rows by key, so it scans the same bytes as the same query on
-- `events` with the same filters, plus the window's CPU. event_type and
-- created_date are in the window's PARTITION BY, so filters on them are applied
-- below the window and Athena still prunes partitions: always filter on
-- created_date. (A duplicate always has its original's created_date, and its
-- event_type unless a producer reused an event_uuid and time for a different event
-- type; such a pair stays two rows here.) For heavy use, materialize a day at a
-- time (CTAS or INSERT INTO a deduplicated table) instead.
--
-- Terraform creates this view in the lake's database from this file's SELECT
-- (terraform/catalog.tf); running the file in Athena replaces it with the same
-- view. `eventlake query` runs it at start-up, so the view is the same in all
-- three places.
CREATE OR REPLACE VIEW events_unique AS
SELECT event_uuid, event_name, event_subtype, created_at, created_datetime, payload, created_ts, ingested_at,
       event_type, created_date
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY event_type, created_date, event_uuid, from_iso8601_timestamp(created_datetime)
            ORDER BY created_datetime, event_name, payload
        ) AS copy_number
    FROM events
)
WHERE copy_number = 1
