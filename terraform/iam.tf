# Least privilege: each role gets the actions it calls, on the resources it
# touches, and nothing else. No action wildcards (a test checks the plan).

data "aws_iam_policy_document" "assume_firehose" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# --- Firehose ----------------------------------------------------------------

resource "aws_iam_role" "firehose" {
  name               = "${local.name}-firehose"
  assume_role_policy = data.aws_iam_policy_document.assume_firehose.json
}

data "aws_iam_policy_document" "firehose" {
  statement {
    sid       = "ReadStream"
    actions   = ["kinesis:DescribeStream", "kinesis:GetShardIterator", "kinesis:GetRecords", "kinesis:ListShards"]
    resources = [aws_kinesis_stream.events.arn]
  }
  statement {
    sid       = "Transform"
    actions   = ["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"]
    resources = [aws_lambda_function.transform.arn, "${aws_lambda_function.transform.arn}:*"]
  }
  statement {
    sid       = "BucketLevel"
    actions   = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.lake.arn]
  }
  statement {
    sid     = "WriteStagingAndErrors"
    actions = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"]
    resources = [
      "${aws_s3_bucket.lake.arn}/${local.staging_prefix}*",
      "${aws_s3_bucket.lake.arn}/${local.errors_prefix}*",
    ]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.firehose.arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "firehose" {
  name   = "firehose"
  role   = aws_iam_role.firehose.id
  policy = data.aws_iam_policy_document.firehose.json
}

# --- firehose-transform ------------------------------------------------------

resource "aws_iam_role" "transform" {
  name               = "${local.name}-firehose-transform"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

data "aws_iam_policy_document" "transform" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.transform.arn}:*"]
  }
}

resource "aws_iam_role_policy" "transform" {
  name   = "firehose-transform"
  role   = aws_iam_role.transform.id
  policy = data.aws_iam_policy_document.transform.json
}

# Glue authorizes a call on a table against the catalog, the database and the
# table: the writer and the compactor name these three.
locals {
  events_table_arns = [
    "arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog",
    aws_glue_catalog_database.lake.arn,
    aws_glue_catalog_table.events.arn,
  ]
  # The typed views (events_<type>) the compactor and operators create or
  # replace; never events_unique, which Terraform owns.
  typed_view_arns = [
    "arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog",
    aws_glue_catalog_database.lake.arn,
    "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${aws_glue_catalog_database.lake.name}/events_*",
  ]
  events_unique_arn = "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${aws_glue_catalog_database.lake.name}/events_unique"
}

# --- parquet-writer ----------------------------------------------------------

resource "aws_iam_role" "writer" {
  name               = "${local.name}-parquet-writer"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

data "aws_iam_policy_document" "writer" {
  statement {
    sid       = "ReadStaged"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.staging_prefix}*"]
  }
  # Marks a staged object as written: only tagged objects expire (s3.tf).
  statement {
    sid       = "TagStagedAsWritten"
    actions   = ["s3:PutObjectTagging"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.staging_prefix}*"]
  }
  # No list: the writer's limits are fixed, so a retry of an object writes the
  # same file names over its earlier files (src/lake/writer.rs,
  # Limits::delete_stale_files is off in the Lambda).
  statement {
    sid     = "WriteLake"
    actions = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [
      "${aws_s3_bucket.lake.arn}/${local.events_prefix}*",
      "${aws_s3_bucket.lake.arn}/${local.rejected_prefix}*",
      "${aws_s3_bucket.lake.arn}/${local.compacted_prefix}*",
    ]
  }
  # A file written to a compacted partition is copied to the partition's
  # location under compacted/, then deleted from events/ (src/compaction/s3.rs settle).
  statement {
    sid       = "MoveIntoCompactedPartitions"
    actions   = ["s3:GetObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.events_prefix}*"]
  }
  # Before it copies, settle reads the location's manifest: the files whose
  # rows the location holds already (a redelivered object is not added twice).
  # Only the manifests: the writer never reads compacted data.
  # Marked before each file settled into a compacted partition: the compactor
  # merges a marked partition again whatever its date.
  statement {
    sid       = "MarkSettledPartitions"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.settled_prefix}*"]
  }
  # What the rows it wrote hold, for the typed views (src/views/publish.rs).
  statement {
    sid       = "ObserveFields"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.observed_prefix}*"]
  }
  statement {
    sid       = "ReadCompactedManifests"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.compacted_prefix}*/_inputs.json"]
  }
  statement {
    sid       = "ConsumeQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
    resources = [aws_sqs_queue.staged.arn]
  }
  statement {
    sid       = "RegisterPartitions"
    actions   = ["glue:GetTable", "glue:BatchCreatePartition", "glue:BatchGetPartition"]
    resources = local.events_table_arns
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.writer.arn}:*"]
  }
}

resource "aws_iam_role_policy" "writer" {
  name   = "parquet-writer"
  role   = aws_iam_role.writer.id
  policy = data.aws_iam_policy_document.writer.json
}

# --- Producers -----------------------------------------------------------------

# For the applications that send events: put records on the stream, nothing
# else. Attach it to their roles (output producer_policy_arn). The stream's key
# is AWS managed (aws/kinesis), so producers need no KMS permission of their own.
resource "aws_iam_policy" "producer" {
  name        = "${local.name}-producer"
  description = "Put records on the ${local.name} event stream"
  policy      = data.aws_iam_policy_document.producer.json
}

data "aws_iam_policy_document" "producer" {
  statement {
    sid       = "PutEvents"
    actions   = ["kinesis:PutRecord", "kinesis:PutRecords"]
    resources = [aws_kinesis_stream.events.arn]
  }
}

# --- operators ------------------------------------------------------------------

# For the people and jobs that run the `eventlake` commands against the deployed
# lake (docs/operate.md): `compact`, `replay` and `ingest` with --database,
# `catalog repair`. Attach it to their role (output operator_policy_arn). It is
# the compactor's and the writer's lake access together, plus the records of
# when each input was first ingested (_sources/) and reading the error prefixes
# that replay takes its sources from; nothing under staging/.
resource "aws_iam_policy" "operator" {
  name        = "${local.name}-operator"
  description = "Run eventlake compact, replay, ingest --database and catalog repair on the ${local.name} lake"
  policy      = data.aws_iam_policy_document.operator.json
}

data "aws_iam_policy_document" "operator" {
  statement {
    sid       = "ListLake"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.lake.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values = [
        "${local.events_prefix}*", "${local.compacted_prefix}*", "${local.settled_prefix}*",
        "${local.rejected_prefix}*", "${local.sources_prefix}*", "${local.errors_prefix}*",
        "${local.schemas_prefix}*",
      ]
    }
  }
  statement {
    sid     = "WriteLake"
    actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [
      "${aws_s3_bucket.lake.arn}/${local.events_prefix}*",
      "${aws_s3_bucket.lake.arn}/${local.compacted_prefix}*",
      "${aws_s3_bucket.lake.arn}/${local.settled_prefix}*",
      "${aws_s3_bucket.lake.arn}/${local.rejected_prefix}*",
      "${aws_s3_bucket.lake.arn}/${local.sources_prefix}*",
      # The typed views: what ingest and replay count, and what eventlake views
      # and compact fold into the schema files (src/views/publish.rs).
      "${aws_s3_bucket.lake.arn}/${local.schemas_prefix}*",
      "${aws_s3_bucket.lake.arn}/${local.lease_key}",
    ]
  }
  statement {
    sid       = "ReadReplaySources"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.errors_prefix}*"]
  }
  statement {
    sid       = "PublishViews"
    actions   = ["glue:CreateTable", "glue:UpdateTable"]
    resources = local.typed_view_arns
  }
  statement {
    sid       = "NotTheDedupeView"
    effect    = "Deny"
    actions   = ["glue:CreateTable", "glue:UpdateTable", "glue:DeleteTable"]
    resources = [local.events_unique_arn]
  }
  statement {
    sid = "CatalogPartitions"
    actions = [
      "glue:GetTable", "glue:GetPartitions", "glue:GetPartition", "glue:BatchGetPartition",
      "glue:BatchCreatePartition", "glue:UpdatePartition",
    ]
    resources = local.events_table_arns
  }
}

# --- compactor ----------------------------------------------------------------

resource "aws_iam_role" "compactor" {
  name               = "${local.name}-compactor"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

# What src/compaction/s3.rs calls: it lists and reads a partition's location (under
# events/ or compacted/), writes the merged files and manifest under compacted/,
# copies late files there, deletes the files it superseded once their grace
# period is over, and reads and switches Glue partitions.
data "aws_iam_policy_document" "compactor" {
  statement {
    sid       = "ListPartitions"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.lake.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.events_prefix}*", "${local.compacted_prefix}*", "${local.settled_prefix}*", "${local.schemas_prefix}*"]
    }
  }
  # A marked partition is merged again; its marks go once it is. A stranded file
  # handed over marks its partition as a writer's settled file does.
  statement {
    sid       = "MarkSettledPartitions"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.settled_prefix}*"]
  }
  # One compaction at a time: the lease is taken, renewed and released with
  # conditional requests on this one object.
  statement {
    sid       = "HoldTheLease"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.lease_key}"]
  }
  statement {
    sid     = "ReadAndDeleteSuperseded"
    actions = ["s3:GetObject", "s3:DeleteObject"]
    resources = [
      "${aws_s3_bucket.lake.arn}/${local.events_prefix}*",
      "${aws_s3_bucket.lake.arn}/${local.compacted_prefix}*",
    ]
  }
  statement {
    sid       = "WriteCompacted"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.compacted_prefix}*"]
  }
  # BatchGetPartition: where a partition is now, after a compaction that did
  # not switch (changed meanwhile, out of time) and before deleting its output.
  # The typed views: observations folded into counts and schema files, the
  # views created or replaced in the lake's database (events_<type> only).
  statement {
    sid       = "KeepSchemas"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.schemas_prefix}*"]
  }
  statement {
    sid       = "PublishViews"
    actions   = ["glue:CreateTable", "glue:UpdateTable"]
    resources = local.typed_view_arns
  }
  statement {
    sid       = "NotTheDedupeView"
    effect    = "Deny"
    actions   = ["glue:CreateTable", "glue:UpdateTable", "glue:DeleteTable"]
    resources = [local.events_unique_arn]
  }
  statement {
    sid       = "SwitchPartitions"
    actions   = ["glue:GetPartitions", "glue:GetPartition", "glue:BatchGetPartition", "glue:UpdatePartition"]
    resources = local.events_table_arns
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.compactor.arn}:*"]
  }
}

resource "aws_iam_role_policy" "compactor" {
  name   = "compactor"
  role   = aws_iam_role.compactor.id
  policy = data.aws_iam_policy_document.compactor.json
}
