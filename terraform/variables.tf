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
    Record data per transform invocation in MB (Firehose's processor BufferSizeInMBs,
    0.2-1). The response must stay under Lambda's 6 MB payload limit: it is base64 of
    the enriched records plus per-record metadata, about three times the data for the
    smallest valid events (~70 bytes) or the longest event names, so at 2 MB it can
    pass 6 MB; tests/it/response_size.rs computes the worst case for every size this
    validation accepts. 1 is Firehose's default and is then left out of the
    configuration (terraform-provider-aws issue 9827).
  EOT
  type        = number
  default     = 1

  validation {
    condition     = var.transform_buffer_mb >= 0.2 && var.transform_buffer_mb <= 1
    error_message = "transform_buffer_mb must be between 0.2 and 1: a larger batch can ask for a response over Lambda's 6 MB."
  }
}

variable "created_at_max_age_days" {
  description = "The transform rejects (reason in errors/processing-failed/, replayable) events whose created_at is more than this many days in the past, so a producer's bad clock cannot open hundreds of Firehose partitions. null: no limit."
  type        = number
  default     = 30
  nullable    = true

  validation {
    condition     = var.created_at_max_age_days == null ? true : var.created_at_max_age_days >= 1 && floor(var.created_at_max_age_days) == var.created_at_max_age_days
    error_message = "created_at_max_age_days must be null or a whole number of days, at least 1."
  }
}

variable "created_at_max_future_days" {
  description = "The transform rejects events whose created_at is more than this many days ahead of its clock. null: no limit."
  type        = number
  default     = 1
  nullable    = true

  validation {
    condition     = var.created_at_max_future_days == null ? true : var.created_at_max_future_days >= 1 && floor(var.created_at_max_future_days) == var.created_at_max_future_days
    error_message = "created_at_max_future_days must be null or a whole number of days, at least 1."
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
  description = "firehose-transform memory (CPU scales with it). 256 MB: a 1 MB batch takes a few milliseconds."
  type        = number
  default     = 256
}

variable "writer_memory_mb" {
  description = "parquet-writer memory. 1769 MB is one full vCPU; it holds one staged object (up to firehose_buffer_mb compressed), its row buffers (96 MiB) and its dedupe set."
  type        = number
  default     = 1769
}

variable "writer_timeout_seconds" {
  description = "parquet-writer timeout (at most 900 s, and at least twice writer_seconds_per_object); the SQS visibility timeout is six times this."
  type        = number
  default     = 300

  validation {
    # 6 x 900 = 5400: the visibility timeout stays far under SQS's maximum.
    condition     = var.writer_timeout_seconds >= 1 && var.writer_timeout_seconds <= 900 && 6 * var.writer_timeout_seconds <= 43200
    error_message = "writer_timeout_seconds must be between 1 and 900 (Lambda's limit), so that six times it (the queue's visibility timeout) stays under SQS's 43200 s."
  }
}

variable "writer_seconds_per_object" {
  description = <<-EOT
    The longest one staged object may take the parquet-writer (env SECONDS_PER_OBJECT).
    An invocation stops taking objects when less time than this remains and hands the
    rest back to SQS as batch item failures, instead of timing out mid-batch. Each
    hand-back counts as a receive toward the DLQ's maxReceiveCount (5).
  EOT
  type        = number
  default     = 30

  validation {
    condition     = var.writer_seconds_per_object >= 1 && floor(var.writer_seconds_per_object) == var.writer_seconds_per_object
    error_message = "writer_seconds_per_object must be a whole number of seconds, at least 1."
  }
}

variable "writer_batch_size" {
  description = <<-EOT
    Staged-object notifications per parquet-writer invocation (SQS event source batch
    size, 1-10000). The writer need not finish a whole batch within its timeout (it hands
    back what it cannot start), but every hand-back counts as a receive toward the
    DLQ's maxReceiveCount: keep batch size x typical seconds per object well under the
    timeout.
  EOT
  type        = number
  default     = 10

  validation {
    condition     = var.writer_batch_size >= 1 && var.writer_batch_size <= 10000 && floor(var.writer_batch_size) == var.writer_batch_size
    error_message = "writer_batch_size must be a whole number between 1 and 10000."
  }
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
  description = <<-EOT
    Days after its creation before a staged NDJSON object expires, once the parquet-writer
    has written it to Parquet and tagged it eventlake-written=true. Untagged objects (not
    yet written: waiting for a retry, in the DLQ, or failed) never expire.
  EOT
  type        = number
  default     = 7

  validation {
    condition     = var.staging_expiration_days >= 1 && floor(var.staging_expiration_days) == var.staging_expiration_days
    error_message = "staging_expiration_days must be a whole number of days, at least 1."
  }
}

variable "staged_queue_retention_days" {
  description = <<-EOT
    Days the staged-object queue keeps a notification (1-13). Shorter than the DLQ's 14
    days: a message moved to the DLQ keeps its original enqueue time, so the DLQ holds it
    for 14 minus this many days at least. A message that reaches this age unprocessed is
    dropped; its staged object stays (untagged, never expiring) for a replay.
  EOT
  type        = number
  default     = 4

  validation {
    condition     = var.staged_queue_retention_days >= 1 && var.staged_queue_retention_days <= 13 && floor(var.staged_queue_retention_days) == var.staged_queue_retention_days
    error_message = "staged_queue_retention_days must be a whole number between 1 and 13: shorter than the DLQ's 14 days."
  }
}

variable "compaction_enabled" {
  description = "Whether the compaction schedule runs (the function is deployed either way)."
  type        = bool
  default     = true
}

variable "compaction_schedule" {
  description = "When the compactor runs: an EventBridge schedule expression."
  type        = string
  default     = "rate(1 hour)"

  validation {
    condition     = can(regex("^(rate\\(.+\\)|cron\\(.+\\))$", var.compaction_schedule))
    error_message = "compaction_schedule must be rate(...) or cron(...)."
  }
}

variable "compaction_older_than_seconds" {
  description = "A partition is compacted once it received no file for this long (the writer's late files included)."
  type        = number
  default     = 3600

  validation {
    condition     = var.compaction_older_than_seconds >= 0 && floor(var.compaction_older_than_seconds) == var.compaction_older_than_seconds
    error_message = "compaction_older_than_seconds must be a whole number of seconds, at least 0."
  }
}

variable "compaction_lookback_days" {
  description = "Each run looks at partitions of today and this many days before: older ones are compact already, and listing them every run would cost S3 requests."
  type        = number
  default     = 3

  validation {
    condition     = var.compaction_lookback_days >= 0 && var.compaction_lookback_days <= 3650 && floor(var.compaction_lookback_days) == var.compaction_lookback_days
    error_message = "compaction_lookback_days must be a whole number of days, 0 to 3650."
  }
}

variable "compaction_target_mib" {
  description = "Size of the compacted files, in MiB."
  type        = number
  default     = 128

  validation {
    condition     = var.compaction_target_mib >= 1 && var.compaction_target_mib <= 1024 && floor(var.compaction_target_mib) == var.compaction_target_mib
    error_message = "compaction_target_mib must be a whole number between 1 and 1024."
  }
}

variable "compaction_memory_mb" {
  description = "The compactor's memory (MB)."
  type        = number
  default     = 2048

  validation {
    condition     = var.compaction_memory_mb >= 512 && var.compaction_memory_mb <= 10240
    error_message = "compaction_memory_mb must be between 512 and 10240."
  }
}

variable "compaction_ephemeral_mb" {
  description = "The compactor's /tmp (MB): a partition's files and their compacted copy must fit."
  type        = number
  default     = 4096

  validation {
    condition     = var.compaction_ephemeral_mb >= 512 && var.compaction_ephemeral_mb <= 10240
    error_message = "compaction_ephemeral_mb must be between 512 and 10240 (Lambda's limits)."
  }
}

variable "compaction_timeout_seconds" {
  description = "The compactor's timeout: a run starts no partition with less than compaction_seconds_per_partition left."
  type        = number
  default     = 900

  validation {
    condition     = var.compaction_timeout_seconds >= 60 && var.compaction_timeout_seconds <= 900
    error_message = "compaction_timeout_seconds must be between 60 and 900 (Lambda's limit)."
  }
}

variable "compaction_seconds_per_partition" {
  description = "The longest one partition's compaction may take; no partition is started with less than this left."
  type        = number
  default     = 120

  validation {
    condition     = var.compaction_seconds_per_partition >= 1 && var.compaction_seconds_per_partition <= 450 && floor(var.compaction_seconds_per_partition) == var.compaction_seconds_per_partition
    error_message = "compaction_seconds_per_partition must be a whole number between 1 and 450."
  }
}

variable "compaction_grace_days" {
  description = <<-EOT
    Days a file superseded by a compaction stays after the compaction switched its partition
    to the new files: a query planned before the switch still reads it. The first compactor
    run after that deletes it. Athena queries run at most a few hours; 1 day is plenty.
  EOT
  type        = number
  default     = 1

  validation {
    condition     = var.compaction_grace_days >= 1 && floor(var.compaction_grace_days) == var.compaction_grace_days
    error_message = "compaction_grace_days must be a whole number of days, at least 1."
  }
}

variable "rejected_archive_days" {
  description = "Days before rejected records (_rejected/ and Firehose's errors/) move to S3 Glacier Instant Retrieval. They never expire: rejected input stays replayable."
  type        = number
  default     = 90

  validation {
    condition     = var.rejected_archive_days >= 1 && floor(var.rejected_archive_days) == var.rejected_archive_days
    error_message = "rejected_archive_days must be a whole number of days, at least 1."
  }
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
  description = "Email subscribed to the alarm topic (confirm the subscription); null: no subscription, refused in prod."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be null or an email address."
  }
}

variable "freshness_alarm_seconds" {
  description = "Alarm when the oldest record in Firehose is older than this (default: twice the buffer interval plus 5 minutes)."
  type        = number
  default     = null
}

variable "staged_queue_age_alarm_seconds" {
  description = "Alarm when the oldest notification in the staged queue is older than this: the writer is failing, throttled or too slow. Must be shorter than staged_queue_retention_days."
  type        = number
  default     = 3600

  validation {
    condition     = var.staged_queue_age_alarm_seconds >= 60
    error_message = "staged_queue_age_alarm_seconds must be at least 60."
  }
}

variable "partition_count_alarm" {
  description = "Alarm when Firehose's active partitions (PartitionCount) pass this; past its limit (500 by default) it sends records to errors/. Must be under 500."
  type        = number
  default     = 400

  validation {
    condition     = var.partition_count_alarm >= 1 && var.partition_count_alarm < 500
    error_message = "partition_count_alarm must be between 1 and 499: below Firehose's default limit of 500 active partitions."
  }
}

variable "rejected_records_alarm" {
  description = "Alarm when the transform rejects more records than this in 5 minutes."
  type        = number
  default     = 100
}

variable "tail_checkpoints" {
  description = "Whether to create the DynamoDB table that eventlake tail keeps its shard positions in (--checkpoint dynamodb://<output tail_checkpoint_table>); off by default: a checkpoint file needs no table."
  type        = bool
  default     = false
}
