-- The lake's database. Terraform creates it (named <name_prefix>_<environment>);
-- run this only to set the lake up by hand.
CREATE DATABASE IF NOT EXISTS eventlake
COMMENT 'eventlake: JSON events as Parquet, partitioned by event_type and created_date'
