# The lake bucket: staging (Firehose output), events/ (Parquet), _rejected/,
# errors/ (records Firehose could not process) and athena-results/.

resource "aws_s3_bucket" "lake" {
  bucket        = local.bucket_name
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_public_access_block" "lake" {
  bucket                  = aws_s3_bucket.lake.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "lake" {
  bucket = aws_s3_bucket.lake.id
  versioning_configuration {
    status = "Enabled"
  }
}

# Every request over plain HTTP is refused: a Deny of s3:*, so no action is left
# out (the stack's wildcard-action check covers Allow statements only).
data "aws_iam_policy_document" "lake_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.lake.arn,
      "${aws_s3_bucket.lake.arn}/*",
    ]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "lake" {
  bucket     = aws_s3_bucket.lake.id
  policy     = data.aws_iam_policy_document.lake_bucket.json
  depends_on = [aws_s3_bucket_public_access_block.lake]
}

resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id

  # Only staged objects the parquet-writer has written to Parquet expire: it tags
  # each one eventlake-written=true after writing it (src/lambda/parquet_writer.rs). An object
  # waiting for a retry or in the DLQ (14 days) is untagged and never expires, so
  # a redrive always finds it. No other rule may expire current versions under
  # the staging prefix (tests/infra/stack_test.py checks the applied rules).
  # The filter is the tag alone: only the writer sets it, and its role may tag
  # staging objects only (iam.tf). (An and { prefix, tags } filter would say the
  # same, but the provider then sends ObjectSizeGreaterThan = 0, which the
  # emulator does not keep, so the stack could not be tested on it.)
  rule {
    id     = "expire-written-staging"
    status = "Enabled"
    filter {
      tag {
        key   = local.written_tag_key
        value = local.written_tag_value
      }
    }
    expiration {
      days = var.staging_expiration_days
    }
    # The expired (tagged) version becomes noncurrent behind a delete marker and
    # keeps its tag: remove it a day later.
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  # Delete markers left once a written object's last version is gone. This
  # removes only markers with no version behind them: never data.
  rule {
    id     = "remove-staging-delete-markers"
    status = "Enabled"
    filter {
      prefix = local.staging_prefix
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  rule {
    id     = "archive-rejected"
    status = "Enabled"
    filter {
      prefix = local.rejected_prefix
    }
    # Rejected input never disappears (the contract): it moves to a cheaper class
    # that still reads at once, so `eventlake replay` works on it as it is.
    transition {
      days          = var.rejected_archive_days
      storage_class = "GLACIER_IR"
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  rule {
    id     = "archive-firehose-errors"
    status = "Enabled"
    filter {
      prefix = local.errors_prefix
    }
    # Rejected input never disappears (the contract): it moves to a cheaper class
    # that still reads at once, so `eventlake replay` works on it as it is.
    transition {
      days          = var.rejected_archive_days
      storage_class = "GLACIER_IR"
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  rule {
    id     = "expire-athena-results"
    status = "Enabled"
    filter {
      prefix = local.athena_prefix
    }
    expiration {
      days = var.athena_results_expiration_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  # Parquet files are rewritten in place when an object is reprocessed: keep the
  # replaced versions a week, not forever.
  rule {
    id     = "expire-replaced-parquet"
    status = "Enabled"
    filter {
      prefix = local.events_prefix
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  # A compaction deletes the files it superseded once its grace period is over
  # (src/compaction/s3.rs); their versions go a week later, and the delete markers
  # with nothing left behind them.
  rule {
    id     = "expire-replaced-compacted-parquet"
    status = "Enabled"
    filter {
      prefix = local.compacted_prefix
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.lake]
}
