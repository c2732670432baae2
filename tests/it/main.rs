//! Integration tests: the built binaries run as processes, against real components.

mod generate_cli;
mod lambda_runtime;
mod properties;
mod support;
mod transform_cli;
