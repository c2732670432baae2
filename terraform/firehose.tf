# Firehose reads the stream, splits packed records into events, sends batches to
# firehose-transform, and writes the records it returns as GZIP NDJSON under the
# staging prefix, partitioned by the keys the transform returns. Records the
# transform fails go to errors/.

resource "aws_cloudwatch_log_group" "firehose" {
  name              = "/aws/kinesisfirehose/${local.name}"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_stream" "firehose_s3" {
  name           = "DestinationDelivery"
  log_group_name = aws_cloudwatch_log_group.firehose.name
}

locals {
  # Only parameters that differ from Firehose's defaults (LambdaArn aside):
  # defaults are not returned by the API, so setting them causes a perpetual
  # diff (terraform-provider-aws issue 9827). 1 MB is the default buffer.
  transform_parameters = merge(
    { LambdaArn = aws_lambda_function.transform.arn },
    var.transform_buffer_mb == 1 ? {} : { BufferSizeInMBs = tostring(var.transform_buffer_mb) },
  )
}

resource "aws_kinesis_firehose_delivery_stream" "events" {
  name        = "${local.name}-events"
  destination = "extended_s3"

  kinesis_source_configuration {
    kinesis_stream_arn = aws_kinesis_stream.events.arn
    role_arn           = aws_iam_role.firehose.arn
  }

  extended_s3_configuration {
    role_arn            = aws_iam_role.firehose.arn
    bucket_arn          = aws_s3_bucket.lake.arn
    prefix              = "${local.staging_prefix}event_type=!{partitionKeyFromLambda:event_type}/created_date=!{partitionKeyFromLambda:created_date}/"
    error_output_prefix = "${local.errors_prefix}!{firehose:error-output-type}/!{timestamp:yyyy-MM-dd}/"
    buffering_size      = var.firehose_buffer_mb
    buffering_interval  = var.firehose_buffer_seconds
    compression_format  = "GZIP"

    dynamic_partitioning_configuration {
      enabled = true
    }

    processing_configuration {
      enabled = true

      # Producers pack several events per record, newline-separated (`eventlake
      # send`): Firehose splits them before the transform, which takes one event
      # per record (up to 500 per record). A split at the delimiter, not type JSON:
      # it parses nothing, so an event that is not valid JSON still reaches the
      # transform alone and is rejected there with its reason, its neighbours kept.
      processors {
        type = "RecordDeAggregation"

        parameters {
          parameter_name  = "SubRecordType"
          parameter_value = "DELIMITED"
        }
        parameters {
          parameter_name  = "Delimiter"
          parameter_value = base64encode("\n")
        }
      }

      processors {
        type = "Lambda"

        dynamic "parameters" {
          for_each = local.transform_parameters
          content {
            parameter_name  = parameters.key
            parameter_value = parameters.value
          }
        }
      }
    }

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.firehose.name
      log_stream_name = aws_cloudwatch_log_stream.firehose_s3.name
    }
  }

  depends_on = [aws_iam_role_policy.firehose]
}
