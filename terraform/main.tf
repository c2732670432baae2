# eventlake: Kinesis -> Firehose (firehose-transform) -> S3 staging -> SQS ->
# parquet-writer -> Parquet lake + Glue partitions -> Athena.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  name       = "${var.name_prefix}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  bucket_name = coalesce(var.lake_bucket_name, "${local.name}-lake-${local.account_id}")

  # The layout the parquet-writer expects (src/lambda/parquet_writer.rs): staged objects under
  # STAGING_PREFIX, the lake under LAKE_PREFIX (events/ and _rejected/ below it).
  staging_prefix = "staging/"
  lake_prefix    = ""
  events_prefix  = "${local.lake_prefix}events/"
  # Compacted partitions (src/compaction/s3.rs COMPACTED_DIR), each Glue partition
  # switched to its own directory here.
  compacted_prefix = "${local.lake_prefix}compacted/"
  rejected_prefix  = "${local.lake_prefix}_rejected/"
  # A writer marks each compacted partition it settles a file into (src/compaction/s3.rs
  # SETTLED_DIR); one compaction at a time holds the lease (src/compaction/lease.rs LEASE_KEY).
  settled_prefix = "${local.lake_prefix}_settled/"
  # When eventlake ingest first read each input (src/lake/writer.rs SOURCES_DIR).
  sources_prefix = "${local.lake_prefix}_sources/"
  # The typed views' schema files and counts (src/views/), and the writers'
  # observations the compactor folds into them.
  schemas_prefix  = "${local.lake_prefix}_schemas/"
  observed_prefix = "${local.lake_prefix}_schemas/_observed/"
  lease_key       = "${local.lake_prefix}_leases/compaction.json"
  errors_prefix   = "errors/"
  athena_prefix   = "athena-results/"

  # The tag the parquet-writer puts on a staged object once it is in the lake
  # (src/lambda/parquet_writer.rs WRITTEN_TAG); the staging lifecycle rule expires only these.
  written_tag_key   = "eventlake-written"
  written_tag_value = "true"

  # The one schema source: `eventlake schema --format glue-json` (a test checks it).
  schema = jsondecode(file("${path.module}/schema.json"))

  repo_root     = abspath("${path.module}/..")
  transform_zip = coalesce(var.transform_zip, "${local.repo_root}/target/lambda/firehose-transform/bootstrap.zip")
  writer_zip    = coalesce(var.writer_zip, "${local.repo_root}/target/lambda/parquet-writer/bootstrap.zip")

  glue_database = replace(local.name, "-", "_")
}
