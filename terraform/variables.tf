variable "environment" {
  description = "Environment name (dev, prod, ...): part of every resource name."
  type        = string
  default     = "dev"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.environment))
    error_message = "environment: 1-16 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "eventlake"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,23}$", var.name_prefix))
    error_message = "name_prefix: 1-24 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

# --- Kinesis ---------------------------------------------------------------

variable "stream_mode" {
  description = "ON_DEMAND (scales by itself, pay per GB) or PROVISIONED (pay per shard-hour; cheaper at steady high volume)."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.stream_mode)
    error_message = "stream_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "shard_count" {
  description = "Shards when stream_mode is PROVISIONED (each takes 1 MB/s or 1000 records/s in)."
  type        = number
  default     = 1
}

variable "stream_retention_hours" {
  description = "How long the stream keeps records (24 to 8760 hours)."
  type        = number
  default     = 24
}

# --- Firehose --------------------------------------------------------------

variable "firehose_buffer_mb" {
  description = "Firehose buffer before writing a staged object (64-128 MB: dynamic partitioning needs at least 64)."
  type        = number
  default     = 128

  validation {
    condition     = var.firehose_buffer_mb >= 64 && var.firehose_buffer_mb <= 128
    error_message = "firehose_buffer_mb must be between 64 and 128."
  }
}

variable "firehose_buffer_seconds" {
  description = "Longest time Firehose buffers a partition before writing it (60-900 s): the lake's latency."
  type        = number
  default     = 300

  validation {
    condition     = var.firehose_buffer_seconds >= 60 && var.firehose_buffer_seconds <= 900
    error_message = "firehose_buffer_seconds must be between 60 and 900."
  }
}

variable "transform_buffer_mb" {
  description = <<-EOT
    Record data per transform invocation (Firehose's processor BufferSizeInMBs, 1-3).
    The response must stay under Lambda's 6 MB: it is base64 of the enriched records plus
    per-record metadata, measured at 2.27x the data for 340-byte events, so 2 MB gives
    about 4.5 MB. Events averaging under ~200 bytes need 1 (Firehose's default, then
    left out of the configuration: terraform-provider-aws issue 9827).
  EOT
  type        = number
  default     = 2

  validation {
    condition     = contains([1, 2, 3], var.transform_buffer_mb)
    error_message = "transform_buffer_mb must be 1, 2 or 3."
  }
}

# --- Lambdas ---------------------------------------------------------------

variable "lambda_architecture" {
  description = "x86_64 (make build) or arm64 (make build ARCH=arm64; about 20% cheaper per GB-second)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.lambda_architecture)
    error_message = "lambda_architecture must be x86_64 or arm64."
  }
}

variable "transform_zip" {
  description = "Zip of the firehose-transform Lambda (from make build); default: the repository's build output."
  type        = string
  default     = null
}

variable "writer_zip" {
  description = "Zip of the parquet-writer Lambda (from make build); default: the repository's build output."
  type        = string
  default     = null
}

variable "transform_memory_mb" {
  description = "firehose-transform memory (CPU scales with it). 256 MB: a 2 MB batch takes tens of milliseconds."
  type        = number
  default     = 256
}

variable "writer_memory_mb" {
  description = "parquet-writer memory. 1769 MB is one full vCPU; it holds a staged object (up to 128 MB) plus the row buffers."
  type        = number
  default     = 1769
}

variable "writer_timeout_seconds" {
  description = "parquet-writer timeout; the SQS visibility timeout is six times this."
  type        = number
  default     = 120
}

variable "writer_max_concurrency" {
  description = "Most parquet-writer instances the SQS event source runs at once (2-1000)."
  type        = number
  default     = 20
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention for the Lambdas and Firehose."
  type        = number
  default     = 30
}

# --- Lake ------------------------------------------------------------------

variable "lake_bucket_name" {
  description = "Name of the lake bucket; default <name_prefix>-<environment>-lake-<account id>."
  type        = string
  default     = null
}

variable "staging_expiration_days" {
  description = "Days before staged NDJSON objects (already turned into Parquet) expire."
  type        = number
  default     = 7
}

variable "rejected_expiration_days" {
  description = "Days before rejected records (_rejected/ and Firehose's errors/) expire."
  type        = number
  default     = 90
}

variable "athena_results_expiration_days" {
  description = "Days before Athena query results expire."
  type        = number
  default     = 30
}

variable "force_destroy" {
  description = "Let terraform destroy delete a bucket that still holds objects (dev only)."
  type        = bool
  default     = false
}

# --- Query -----------------------------------------------------------------

variable "athena_bytes_scanned_cutoff" {
  description = "Athena cancels a query of this workgroup that would scan more bytes (default 100 GB, about $0.49)."
  type        = number
  default     = 107374182400
}

# --- Alarms ----------------------------------------------------------------

variable "alarm_email" {
  description = "Email subscribed to the alarm topic (confirm the subscription); null: no subscription."
  type        = string
  default     = null
}

variable "freshness_alarm_seconds" {
  description = "Alarm when the oldest record in Firehose is older than this (default: twice the buffer interval plus 5 minutes)."
  type        = number
  default     = null
}

variable "rejected_records_alarm" {
  description = "Alarm when the transform rejects more records than this in 5 minutes."
  type        = number
  default     = 100
}
