resource "aws_kinesis_stream" "events" {
  name             = "${local.name}-events"
  retention_period = var.stream_retention_hours
  shard_count      = var.stream_mode == "PROVISIONED" ? var.shard_count : null
  encryption_type  = "KMS"
  kms_key_id       = "alias/aws/kinesis"

  stream_mode_details {
    stream_mode = var.stream_mode
  }
}
