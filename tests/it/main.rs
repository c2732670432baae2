//! Integration tests: the built binaries run as processes, against real components.

mod catalog_glue;
mod cli_hostile;
mod compact_local;
mod compact_s3;
mod console;
mod cost_model;
mod docs;
mod faults;
mod generate_cli;
mod lake_local;
mod lake_s3;
mod lake_safety;
mod lambda_runtime;
mod properties;
mod queries;
mod replay;
mod response_size;
mod send_kinesis;
mod support;
mod tail;
mod transform_cli;
mod views;
