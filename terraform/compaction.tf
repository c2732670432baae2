# The scheduled compactor: the parquet-writer's zip with EVENTLAKE_HANDLER=compactor
# (src/bin/parquet-writer.rs, src/lambda/compactor.rs), its own role (iam.tf).
# Each run compacts the partitions of the last var.compaction_lookback_days days
# that received no file for var.compaction_older_than_seconds: their files merged
# under compacted/, the Glue partition switched to them in one UpdatePartition
# (src/compaction/s3.rs, docs/lake.md). One run at a time per lake: each run takes
# the lease object local.lease_key (src/compaction/lease.rs), as `eventlake compact`
# does; concurrency is 1 and the schedule does not retry (the next run does).

resource "aws_cloudwatch_log_group" "compactor" {
  name              = "/aws/lambda/${local.name}-compactor"
  retention_in_days = var.log_retention_days
}

# Compaction downloads a partition's files to /tmp, merges them (memory bounded
# by the merge's 256 MiB budget, src/compaction/merge.rs) and uploads the result:
# 2048 MB gives more than one vCPU, and /tmp holds the inputs and the outputs.
resource "aws_lambda_function" "compactor" {
  function_name                  = "${local.name}-compactor"
  role                           = aws_iam_role.compactor.arn
  filename                       = local.writer_zip
  source_code_hash               = filebase64sha256(local.writer_zip)
  handler                        = "bootstrap"
  runtime                        = "provided.al2023"
  architectures                  = [var.lambda_architecture]
  memory_size                    = var.compaction_memory_mb
  timeout                        = var.compaction_timeout_seconds
  reserved_concurrent_executions = 1

  ephemeral_storage {
    size = var.compaction_ephemeral_mb
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.compactor.name
  }

  environment {
    variables = {
      EVENTLAKE_HANDLER             = "compactor"
      LAKE_BUCKET                   = aws_s3_bucket.lake.bucket
      LAKE_PREFIX                   = local.lake_prefix
      GLUE_DATABASE                 = aws_glue_catalog_database.lake.name
      GLUE_TABLE                    = aws_glue_catalog_table.events.name
      COMPACT_OLDER_THAN_SECONDS    = tostring(var.compaction_older_than_seconds)
      COMPACT_TARGET_MIB            = tostring(var.compaction_target_mib)
      COMPACT_LOOKBACK_DAYS         = tostring(var.compaction_lookback_days)
      COMPACT_SECONDS_PER_PARTITION = tostring(var.compaction_seconds_per_partition)
      COMPACT_GRACE_SECONDS         = tostring(var.compaction_grace_days * 86400)
      RUST_LOG                      = "info"
    }
  }

  lifecycle {
    precondition {
      condition     = var.compaction_timeout_seconds >= 2 * var.compaction_seconds_per_partition
      error_message = "compaction_timeout_seconds must be at least twice compaction_seconds_per_partition, or a run may not finish one partition."
    }
  }
}

# A failed scheduled run is not retried: the next one starts where it stopped.
resource "aws_lambda_function_event_invoke_config" "compactor" {
  function_name                = aws_lambda_function.compactor.function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 3600
}

resource "aws_cloudwatch_event_rule" "compaction" {
  name                = "${local.name}-compaction"
  description         = "Runs the eventlake compactor (closed partitions merged, one row per event)."
  schedule_expression = var.compaction_schedule
  state               = var.compaction_enabled ? "ENABLED" : "DISABLED"
}

resource "aws_cloudwatch_event_target" "compaction" {
  rule = aws_cloudwatch_event_rule.compaction.name
  arn  = aws_lambda_function.compactor.arn
}

resource "aws_lambda_permission" "compaction_schedule" {
  statement_id  = "AllowCompactionSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.compactor.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.compaction.arn
}

# The compactor's own metrics (namespace eventlake, dimension FunctionName), each
# alarming on any count at all in an hour.
locals {
  compactor_alarms = {
    partitions-failed = {
      metric = "PartitionsFailed"
      what   = "The compactor failed partitions (metric PartitionsFailed, by Reason in namespace eventlake); the others went on and the next run tries again. Lambda's Errors stays 0 for these."
    }
    # Files found in events/ of a compacted partition, older than any writer's run
    # (src/compaction/s3.rs STRANDED_AFTER): written without the catalog, or left by
    # a writer message that expired in the DLQ. The run handed them over, so they
    # are read now; the alarm says that something writes around the pipeline.
    # A type has more payload fields than its typed view has columns (500): the
    # least frequent stay in payload only (listed in its schema file).
    column-budget = {
      metric = "TypesAtColumnBudget"
      what   = "A typed view reached its 500 columns (metric TypesAtColumnBudget in namespace eventlake): the least frequent payload fields of that type are left out of it; see _schemas/<type>.json and docs/query.md."
    }
    stranded-files = {
      metric = "StrandedFiles"
      what   = "The compactor found files stranded in events/ of compacted partitions (metric StrandedFiles in namespace eventlake) and handed them over; find what writes there without the Glue catalog (docs/operate.md)."
    }
  }
}

# The failed-partitions alarm was a resource of its own before the stranded-files one joined it.
moved {
  from = aws_cloudwatch_metric_alarm.compactor_partitions_failed
  to   = aws_cloudwatch_metric_alarm.compactor["partitions-failed"]
}

resource "aws_cloudwatch_metric_alarm" "compactor" {
  for_each            = local.compactor_alarms
  alarm_name          = "${local.name}-compactor-${each.key}"
  alarm_description   = each.value.what
  namespace           = "eventlake"
  metric_name         = each.value.metric
  dimensions          = { FunctionName = aws_lambda_function.compactor.function_name }
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}
