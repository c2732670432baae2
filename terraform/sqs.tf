# S3 notifications for staged objects -> SQS (retries, DLQ) -> parquet-writer.

locals {
  # SQS's maximum: the longest time to look at a failed object and redrive it.
  dlq_retention_days = 14
}

resource "aws_sqs_queue" "staged_dlq" {
  name                      = "${local.name}-staged-dlq"
  message_retention_seconds = local.dlq_retention_days * 86400
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "staged" {
  name                       = "${local.name}-staged"
  visibility_timeout_seconds = 6 * var.writer_timeout_seconds # AWS's advice for Lambda event sources
  message_retention_seconds  = var.staged_queue_retention_days * 86400
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.staged_dlq.arn
    maxReceiveCount     = 5
  })

  lifecycle {
    # A message moved to a DLQ keeps its original enqueue time: the DLQ must keep
    # messages longer than this queue, or a failed object's message expires there
    # before anyone can redrive it.
    precondition {
      condition     = var.staged_queue_retention_days < local.dlq_retention_days
      error_message = "staged_queue_retention_days must be shorter than the DLQ's ${local.dlq_retention_days} days."
    }
    # The age alarm must fire before messages expire unprocessed.
    precondition {
      condition     = var.staged_queue_age_alarm_seconds < var.staged_queue_retention_days * 86400
      error_message = "staged_queue_age_alarm_seconds must be shorter than staged_queue_retention_days."
    }
  }
}

data "aws_iam_policy_document" "staged_queue" {
  statement {
    sid       = "S3Notifications"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.staged.arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.lake.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "staged" {
  queue_url = aws_sqs_queue.staged.id
  policy    = data.aws_iam_policy_document.staged_queue.json
}

resource "aws_s3_bucket_notification" "staged" {
  bucket = aws_s3_bucket.lake.id

  queue {
    queue_arn     = aws_sqs_queue.staged.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = local.staging_prefix
  }

  depends_on = [aws_sqs_queue_policy.staged]
}
