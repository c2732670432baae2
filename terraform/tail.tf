# `eventlake tail` (docs/operate.md): a consumer that reads the stream beside
# Firehose, every shard in order, and may keep its positions in this table
# (src/aws/dynamodb.rs: partition key `stream`, sort key `shard`, one item per
# shard, every write conditional on the version last read). Off by default.
resource "aws_dynamodb_table" "tail_checkpoints" {
  count        = var.tail_checkpoints ? 1 : 0
  name         = "${local.name}-tail-checkpoints"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "stream"
  range_key    = "shard"

  attribute {
    name = "stream"
    type = "S"
  }
  attribute {
    name = "shard"
    type = "S"
  }

  server_side_encryption {
    enabled = true
  }
  point_in_time_recovery {
    enabled = true
  }
}

# For the people and jobs that run `eventlake tail` (and the console's consumer)
# on the stream: read its shards, and keep positions in the checkpoint table
# when there is one. Attach it to their role (output consumer_policy_arn). The
# stream's key is AWS managed (aws/kinesis), so readers need no KMS permission
# of their own.
resource "aws_iam_policy" "consumer" {
  name        = "${local.name}-consumer"
  description = "Read the ${local.name} event stream with eventlake tail"
  policy      = data.aws_iam_policy_document.consumer.json
}

data "aws_iam_policy_document" "consumer" {
  statement {
    sid       = "ReadStream"
    actions   = ["kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"]
    resources = [aws_kinesis_stream.events.arn]
  }
  dynamic "statement" {
    for_each = aws_dynamodb_table.tail_checkpoints
    content {
      sid       = "KeepPositions"
      actions   = ["dynamodb:Query", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]
      resources = [statement.value.arn]
    }
  }
}
