# Alarms (to an SNS topic) and a dashboard of the whole pipeline.

# The alarm topic's key. CloudWatch cannot publish to a topic encrypted with the
# AWS-managed alias/aws/sns (its policy cannot be changed to let CloudWatch use
# it), so the topic has its own key whose policy lets CloudWatch and SNS use it.
data "aws_iam_policy_document" "alarms_key" {
  # The default key policy: the account administers the key through IAM. Key
  # policies are where the stack test accepts wildcard actions: kms:* for the
  # account root, kms:GenerateDataKey* for the services below.
  #checkov:skip=CKV_AWS_109:A key policy's resource "*" is the key itself; the root statement delegates to IAM.
  #checkov:skip=CKV_AWS_111:A key policy's resource "*" is the key itself; the root statement delegates to IAM.
  #checkov:skip=CKV_AWS_356:A key policy's resource "*" is the key itself.
  statement {
    sid       = "AccountAdministersKey"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # What a publisher to an encrypted topic and SNS itself need (AWS's documented
  # policy for CloudWatch alarms on encrypted topics), from this account only.
  statement {
    sid       = "CloudWatchPublishes"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
  statement {
    sid       = "SnsDelivers"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "alarms" {
  description             = "${local.name}: alarm topic"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.alarms_key.json
}

resource "aws_kms_alias" "alarms" {
  name          = "alias/${local.name}-alarms"
  target_key_id = aws_kms_key.alarms.key_id
}

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = aws_kms_key.alarms.arn

  lifecycle {
    # Alarms that notify nobody protect nothing: prod needs a subscriber.
    precondition {
      condition     = var.environment != "prod" || var.alarm_email != null
      error_message = "alarm_email must be set in prod (the alarms would notify nobody)."
    }
  }
}

data "aws_iam_policy_document" "alarm_topic" {
  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarm_topic.json
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count     = var.alarm_email == null ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  freshness_alarm_seconds = coalesce(var.freshness_alarm_seconds, 2 * var.firehose_buffer_seconds + 300)
  functions = {
    transform = aws_lambda_function.transform.function_name
    writer    = aws_lambda_function.writer.function_name
    compactor = aws_lambda_function.compactor.function_name
  }
}

resource "aws_cloudwatch_metric_alarm" "delivery_freshness" {
  alarm_name          = "${local.name}-delivery-freshness"
  alarm_description   = "The oldest record in Firehose is older than ${local.freshness_alarm_seconds} s: delivery to S3 is stuck or the transform is failing."
  namespace           = "AWS/Firehose"
  metric_name         = "DeliveryToS3.DataFreshness"
  dimensions          = { DeliveryStreamName = aws_kinesis_firehose_delivery_stream.events.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.freshness_alarm_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "processing_failed" {
  alarm_name          = "${local.name}-transform-invocations-failed"
  alarm_description   = "Firehose could not process a batch (transform error or timeout): its records go to errors/processing-failed/."
  namespace           = "AWS/Firehose"
  metric_name         = "ExecuteProcessing.Success"
  dimensions          = { DeliveryStreamName = aws_kinesis_firehose_delivery_stream.events.name }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# Rejected input: records the transform refused (in errors/processing-failed/)
# and rows the writer refused (with their reasons in _rejected/), both
# replayable with `eventlake replay`. Either means a producer sending bad data.
locals {
  rejected_alarms = {
    records = {
      metric   = "RecordsFailed"
      function = aws_lambda_function.transform.function_name
      what     = "The transform rejected more than ${var.rejected_records_alarm} records in 5 minutes (metric RecordsFailed by Reason in namespace eventlake; records in errors/processing-failed/)."
    }
    rows = {
      metric   = "RowsRejected"
      function = aws_lambda_function.writer.function_name
      what     = "The writer rejected more than ${var.rejected_records_alarm} rows in 5 minutes (metric RowsRejected in namespace eventlake; the rows and their reasons in _rejected/)."
    }
  }
}

# The transform's alarm was a resource of its own before the writer's joined it.
moved {
  from = aws_cloudwatch_metric_alarm.rejected_records
  to   = aws_cloudwatch_metric_alarm.rejected["records"]
}

resource "aws_cloudwatch_metric_alarm" "rejected" {
  for_each            = local.rejected_alarms
  alarm_name          = "${local.name}-${each.key}-rejected"
  alarm_description   = each.value.what
  namespace           = "eventlake"
  metric_name         = each.value.metric
  dimensions          = { FunctionName = each.value.function }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.rejected_records_alarm
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# Errors and throttles of each Lambda: any at all is worth a look.
locals {
  lambda_alarms = {
    Errors    = "returned errors (see its log group)."
    Throttles = "was throttled: raise its concurrency or the account limit."
  }
}

resource "aws_cloudwatch_metric_alarm" "lambda" {
  for_each = merge([for key, name in local.functions : {
    for metric, advice in local.lambda_alarms :
    "${key}-${lower(metric)}" => { function = name, metric = metric, advice = advice }
  }]...)

  alarm_name          = "${each.value.function}-${lower(each.value.metric)}"
  alarm_description   = "${each.value.function} ${each.value.advice}"
  namespace           = "AWS/Lambda"
  metric_name         = each.value.metric
  dimensions          = { FunctionName = each.value.function }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "writer_objects_failed" {
  alarm_name          = "${local.name}-writer-objects-failed"
  alarm_description   = "The parquet-writer failed staged objects (metric ObjectsFailed, by Reason in namespace eventlake). Lambda's Errors stays 0 for these: the writer reports them as batch item failures and SQS retries them, then moves them to the DLQ."
  namespace           = "eventlake"
  metric_name         = "ObjectsFailed"
  dimensions          = { FunctionName = aws_lambda_function.writer.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "staged_queue_age" {
  alarm_name          = "${local.name}-staged-queue-behind"
  alarm_description   = "The oldest staged-object notification waits over ${var.staged_queue_age_alarm_seconds} s in ${aws_sqs_queue.staged.name}: the writer is failing, throttled or too slow. Messages older than ${var.staged_queue_retention_days} days are dropped."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.staged.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.staged_queue_age_alarm_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "partition_count" {
  alarm_name          = "${local.name}-partitions-high"
  alarm_description   = "Firehose has more than ${var.partition_count_alarm} active partitions; past its limit (500 by default) it sends records to errors/partitioning-failed/. Look for a producer sending many event types or far-off dates (PartitionsInBatch on the dashboard)."
  namespace           = "AWS/Firehose"
  metric_name         = "PartitionCount"
  dimensions          = { DeliveryStreamName = aws_kinesis_firehose_delivery_stream.events.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.partition_count_alarm
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "partition_count_exceeded" {
  alarm_name          = "${local.name}-partition-limit-exceeded"
  alarm_description   = "Firehose passed its active partition limit: records go to errors/partitioning-failed/ until partitions close. Replay them once the cause is fixed, or raise the limit."
  namespace           = "AWS/Firehose"
  metric_name         = "PartitionCountExceeded"
  dimensions          = { DeliveryStreamName = aws_kinesis_firehose_delivery_stream.events.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  alarm_name          = "${local.name}-staged-dlq-not-empty"
  alarm_description   = "Staged objects failed 5 times and wait in ${aws_sqs_queue.staged_dlq.name}: fix the cause, then redrive the DLQ."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.staged_dlq.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_dashboard" "pipeline" {
  dashboard_name = local.name
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title   = "Stream in (records)", region = local.region, stat = "Sum", period = 300
          metrics = [["AWS/Kinesis", "IncomingRecords", "StreamName", aws_kinesis_stream.events.name]]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title   = "Firehose delivery freshness (s)", region = local.region, stat = "Maximum", period = 300
          metrics = [["AWS/Firehose", "DeliveryToS3.DataFreshness", "DeliveryStreamName", aws_kinesis_firehose_delivery_stream.events.name]]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title = "Transform: records in, ok, dropped (duplicates), failed", region = local.region, stat = "Sum", period = 300
          metrics = [
            ["eventlake", "RecordsIn", "FunctionName", aws_lambda_function.transform.function_name],
            [".", "RecordsOk", ".", "."],
            [".", "RecordsDropped", ".", "."],
            [".", "RecordsFailed", ".", "."],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title = "Lambda errors and throttles", region = local.region, stat = "Sum", period = 300
          # One line per (function, metric): flatten() would flatten the lines too.
          metrics = [
            for pair in setproduct(values(local.functions), ["Errors", "Throttles"]) :
            ["AWS/Lambda", pair[1], "FunctionName", pair[0]]
          ]
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 12, height = 6
        properties = {
          title   = "Lambda duration p99 (ms)", region = local.region, stat = "p99", period = 300
          metrics = [for name in values(local.functions) : ["AWS/Lambda", "Duration", "FunctionName", name]]
        }
      },
      {
        type = "metric", x = 12, y = 12, width = 12, height = 6
        properties = {
          title = "Staged queue and DLQ (messages)", region = local.region, stat = "Maximum", period = 300
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.staged.name],
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", aws_sqs_queue.staged.name],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.staged_dlq.name],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 18, width = 12, height = 6
        properties = {
          title = "Partitions: Firehose active, distinct per transform batch (max)", region = local.region, stat = "Maximum", period = 300
          metrics = [
            ["AWS/Firehose", "PartitionCount", "DeliveryStreamName", aws_kinesis_firehose_delivery_stream.events.name],
            ["eventlake", "PartitionsInBatch", "FunctionName", aws_lambda_function.transform.function_name],
          ]
          annotations = { horizontal = [{ label = "alarm", value = var.partition_count_alarm }] }
        }
      },
      {
        type = "metric", x = 12, y = 18, width = 12, height = 6
        properties = {
          title = "Writer: objects written, failed, handed back", region = local.region, stat = "Sum", period = 300
          metrics = [
            ["eventlake", "ObjectsWritten", "FunctionName", aws_lambda_function.writer.function_name],
            [".", "ObjectsFailed", ".", "."],
            [".", "ObjectsDeferred", ".", "."],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 24, width = 12, height = 6
        properties = {
          title = "Writer: rows written, duplicate, rejected", region = local.region, stat = "Sum", period = 300
          metrics = [
            ["eventlake", "RowsWritten", "FunctionName", aws_lambda_function.writer.function_name],
            [".", "RowsDuplicate", ".", "."],
            [".", "RowsRejected", ".", "."],
          ]
        }
      },
    ]
  })
}
