output "stream_name" {
  description = "Kinesis Data Stream producers write to."
  value       = aws_kinesis_stream.events.name
}

output "producer_policy_arn" {
  description = "IAM policy for the applications that send events: PutRecord and PutRecords on the stream only."
  value       = aws_iam_policy.producer.arn
}

output "operator_policy_arn" {
  description = "IAM policy for the people and jobs that run eventlake compact, replay, ingest --database and catalog repair on the lake."
  value       = aws_iam_policy.operator.arn
}

output "firehose_name" {
  description = "Firehose delivery stream."
  value       = aws_kinesis_firehose_delivery_stream.events.name
}

output "lake_bucket" {
  description = "Bucket of the lake (staging/, events/, _rejected/, errors/, athena-results/)."
  value       = aws_s3_bucket.lake.bucket
}

output "lake_root" {
  description = "The lake root, for eventlake ingest and eventlake catalog repair."
  value       = "s3://${aws_s3_bucket.lake.bucket}/${local.lake_prefix}"
}

output "glue_database" {
  description = "Glue database holding the events table."
  value       = aws_glue_catalog_database.lake.name
}

output "athena_workgroup" {
  description = "Athena workgroup to run athena/ queries in."
  value       = aws_athena_workgroup.lake.name
}

output "transform_function" {
  description = "firehose-transform Lambda."
  value       = aws_lambda_function.transform.function_name
}

output "writer_function" {
  description = "parquet-writer Lambda."
  value       = aws_lambda_function.writer.function_name
}

output "compactor_function" {
  description = "The scheduled compactor's function name."
  value       = aws_lambda_function.compactor.function_name
}

output "staged_queue_url" {
  description = "SQS queue of staged-object notifications."
  value       = aws_sqs_queue.staged.url
}

output "dlq_url" {
  description = "Dead-letter queue of staged objects that failed 5 times."
  value       = aws_sqs_queue.staged_dlq.url
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify."
  value       = aws_sns_topic.alarms.arn
}

output "dashboard" {
  description = "CloudWatch dashboard name."
  value       = aws_cloudwatch_dashboard.pipeline.dashboard_name
}

output "consumer_policy_arn" {
  description = "IAM policy for the people and jobs that run eventlake tail: read the stream's shards, and keep positions in the checkpoint table when there is one."
  value       = aws_iam_policy.consumer.arn
}

output "tail_checkpoint_table" {
  description = "DynamoDB table for eventlake tail --checkpoint dynamodb://<this> (null unless tail_checkpoints = true)."
  value       = one(aws_dynamodb_table.tail_checkpoints[*].name)
}
