//! `eventlake schema`: the lake's one schema, in the form each consumer reads.

use std::process::ExitCode;

use crate::lake::schema;

/// Print the lake schema as Arrow, Glue JSON (for Terraform) or Athena DDL.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value_t = Format::Arrow)]
    format: Format,
    /// Table name, for athena-ddl.
    #[arg(long, default_value = "events")]
    table: String,
    /// Table location, for athena-ddl.
    #[arg(long, default_value = "s3://LAKE_BUCKET/events/")]
    location: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Arrow,
    GlueJson,
    AthenaDdl,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.format {
        Format::Arrow => {
            for field in schema::arrow_schema().fields() {
                let nullable = if field.is_nullable() { "nullable" } else { "not null" };
                println!("{}: {} ({nullable})", field.name(), field.data_type());
            }
            for column in schema::partition_columns() {
                println!("{}: partition, {} in the path", column.name, column.athena_type);
            }
        }
        Format::GlueJson => println!("{}", serde_json::to_string_pretty(&schema::glue_json())?),
        Format::AthenaDdl => print!("{}", schema::athena_ddl(&args.table, &args.location)),
    }
    Ok(ExitCode::SUCCESS)
}
