//! Integration tests: the built binaries run as processes, against real components.

mod generate_cli;
mod lake_local;
mod lambda_runtime;
mod properties;
mod support;
mod transform_cli;
