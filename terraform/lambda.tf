# The two Lambdas, from the zips `make build` writes.

resource "aws_cloudwatch_log_group" "transform" {
  name              = "/aws/lambda/${local.name}-firehose-transform"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_group" "writer" {
  name              = "/aws/lambda/${local.name}-parquet-writer"
  retention_in_days = var.log_retention_days
}

# firehose-transform: ~300 MiB/s per core, so a 1 MB batch is milliseconds of CPU
# even at 256 MB (a sixth of a vCPU). Firehose waits up to the timeout; 60 s
# leaves room for a cold start and a slow invocation without holding the stream.
# The created_at window bounds the partitions one bad producer clock can open;
# a null variable leaves its side of the window open (its env var unset).
resource "aws_lambda_function" "transform" {
  function_name    = "${local.name}-firehose-transform"
  role             = aws_iam_role.transform.arn
  filename         = local.transform_zip
  source_code_hash = filebase64sha256(local.transform_zip)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = [var.lambda_architecture]
  memory_size      = var.transform_memory_mb
  timeout          = 60

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.transform.name
  }

  environment {
    variables = merge(
      { RUST_LOG = "info" },
      var.created_at_max_age_days == null ? {} : { CREATED_AT_MAX_AGE_DAYS = tostring(var.created_at_max_age_days) },
      var.created_at_max_future_days == null ? {} : { CREATED_AT_MAX_FUTURE_DAYS = tostring(var.created_at_max_future_days) },
    )
  }
}

# parquet-writer: ingest runs at ~65 MiB/s on one core with a peak of ~240 MB for
# a 1 GiB input. A staged object is at most var.firehose_buffer_mb compressed
# (about 5x that as NDJSON); the writer holds it once and decompresses it line by
# line into its row buffers (96 MiB with the dedupe set, as much again for parts
# being encoded, a few MiB per block of lines being checked: one per vCPU), so
# 1769 MB (one vCPU) turns the largest object into Parquet in seconds. It stops taking objects when less than
# SECONDS_PER_OBJECT remains and hands the rest back to SQS, so a batch never
# times out mid-object: the timeout must leave room for two objects (S3 and Glue
# retries included), not for the whole batch.
resource "aws_lambda_function" "writer" {
  function_name    = "${local.name}-parquet-writer"
  role             = aws_iam_role.writer.arn
  filename         = local.writer_zip
  source_code_hash = filebase64sha256(local.writer_zip)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = [var.lambda_architecture]
  memory_size      = var.writer_memory_mb
  timeout          = var.writer_timeout_seconds

  ephemeral_storage {
    size = 2048 # spill files of partitions that overflow the row buffers
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.writer.name
  }

  environment {
    variables = {
      LAKE_BUCKET        = aws_s3_bucket.lake.bucket
      LAKE_PREFIX        = local.lake_prefix
      STAGING_PREFIX     = local.staging_prefix
      GLUE_DATABASE      = aws_glue_catalog_database.lake.name
      GLUE_TABLE         = aws_glue_catalog_table.events.name
      SECONDS_PER_OBJECT = tostring(var.writer_seconds_per_object)
      # The typed views' observations: the compactor folds them, so only with it.
      OBSERVE_FIELDS = tostring(var.compaction_enabled)
      RUST_LOG       = "info"
    }
  }

  lifecycle {
    precondition {
      # The staged object, plus the writer's own budgets (src/lambda/parquet_writer.rs,
      # test the_memory_floor_covers_the_writers_budgets): rows and dedupe set,
      # parts being encoded, blocks of lines being checked.
      condition     = var.writer_memory_mb >= var.firehose_buffer_mb + 512
      error_message = "writer_memory_mb must be at least firehose_buffer_mb + 512: the staged object and the writer's buffers must fit."
    }
    precondition {
      condition     = var.writer_timeout_seconds >= 2 * var.writer_seconds_per_object
      error_message = "writer_timeout_seconds must be at least twice writer_seconds_per_object, or an invocation may not finish a single object."
    }
  }
}

resource "aws_lambda_event_source_mapping" "writer" {
  event_source_arn                   = aws_sqs_queue.staged.arn
  function_name                      = aws_lambda_function.writer.arn
  batch_size                         = var.writer_batch_size
  maximum_batching_window_in_seconds = 5
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.writer_max_concurrency
  }
}
