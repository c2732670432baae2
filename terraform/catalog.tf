# Glue database and `events` table (columns from schema.json, the one schema
# source) and the Athena workgroup.

resource "aws_glue_catalog_database" "lake" {
  name        = local.glue_database
  description = "eventlake ${var.environment}: JSON events as Parquet"
}

# Protected: after a compaction the table is where the lake records each
# partition's location (catalog repair can rebuild it, but only by scanning the
# bucket). `make teardown` removes it from the state before destroying the rest.
resource "aws_glue_catalog_table" "events" {
  lifecycle {
    prevent_destroy = true
  }

  name          = "events"
  database_name = aws_glue_catalog_database.lake.name
  table_type    = "EXTERNAL_TABLE"
  description   = "Events, partitioned by event_type and created_date; partitions registered by the parquet-writer"

  parameters = {
    EXTERNAL              = "TRUE"
    classification        = "parquet"
    "parquet.compression" = "ZSTD"
  }

  dynamic "partition_keys" {
    for_each = local.schema.partition_keys
    content {
      name    = partition_keys.value.name
      type    = partition_keys.value.type
      comment = partition_keys.value.comment
    }
  }

  storage_descriptor {
    location      = "s3://${aws_s3_bucket.lake.bucket}/${local.events_prefix}"
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }

    dynamic "columns" {
      for_each = local.schema.columns
      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

# The events_unique view, as Athena stores the view athena/ddl/events_unique.sql
# creates: a Glue VIRTUAL_VIEW whose original text holds the Trino view definition
# (the SELECT of that file, unchanged, and its columns with Trino types). Running
# the file in Athena replaces it with the same view.
locals {
  events_unique_sql = trimspace(regex(
    "(?s)CREATE OR REPLACE VIEW events_unique AS\\s(.*)",
    file("${path.module}/../athena/ddl/events_unique.sql"),
  )[0])
  view_columns = concat(local.schema.columns, local.schema.partition_keys)
  trino_types  = { string = "varchar", bigint = "bigint", timestamp = "timestamp(3)" }
  events_unique_view = jsonencode({
    originalSql = local.events_unique_sql
    catalog     = "awsdatacatalog"
    schema      = aws_glue_catalog_database.lake.name
    columns     = [for c in local.view_columns : { name = c.name, type = local.trino_types[c.type] }]
  })
}

resource "aws_glue_catalog_table" "events_unique" {
  name          = "events_unique"
  database_name = aws_glue_catalog_database.lake.name
  table_type    = "VIRTUAL_VIEW"
  description   = "Every event once: one row per (event_uuid, created time to the millisecond); see athena/ddl/events_unique.sql"

  view_original_text = "/* Presto View: ${base64encode(local.events_unique_view)} */"
  view_expanded_text = "/* Presto View */"

  parameters = {
    presto_view = "true"
    comment     = "Presto View"
  }

  storage_descriptor {
    ser_de_info {
      name                  = "-"
      serialization_library = "-"
    }

    dynamic "columns" {
      for_each = local.view_columns
      content {
        name = columns.value.name
        type = columns.value.type
      }
    }
  }

  depends_on = [aws_glue_catalog_table.events]
}

resource "aws_athena_workgroup" "lake" {
  name          = local.name
  description   = "Queries over the eventlake ${var.environment} lake"
  force_destroy = var.force_destroy

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location = "s3://${aws_s3_bucket.lake.bucket}/${local.athena_prefix}"

      encryption_configuration {
        encryption_option = "SSE_S3"
      }
    }
  }
}
