//! The docs agree with the one schema source.

use eventlake::schema;

#[test]
fn readme_schema_table_matches_the_schema() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let arrow = schema::arrow_schema();
    for (column, field) in schema::columns().iter().zip(arrow.fields()) {
        let kind = match (column.athena_type, field.is_nullable()) {
            ("bigint", _) => "int64 / bigint".to_owned(),
            (kind, true) => format!("{kind}, nullable"),
            (kind, false) => kind.to_owned(),
        };
        let row = format!("| `{}` | {kind} | {} |", column.name, column.comment);
        assert!(readme.contains(&row), "README lacks the row:\n{row}");
    }
}

#[test]
fn athena_table_ddl_is_the_generated_one() {
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/athena/ddl/create_table_events.sql"))
            .unwrap();
    let statement: String =
        file.lines().filter(|line| !line.starts_with("--")).map(|line| format!("{line}\n")).collect();
    assert_eq!(
        statement,
        schema::athena_ddl("events", "s3://LAKE_BUCKET/events/"),
        "athena/ddl/create_table_events.sql drifted from the schema: regenerate it with \
         `eventlake schema --format athena-ddl`"
    );
}

#[test]
fn terraform_schema_is_the_generated_one() {
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/terraform/schema.json")).unwrap();
    let committed: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(
        committed,
        schema::glue_json(),
        "terraform/schema.json drifted from the schema: regenerate it with \
         `eventlake schema --format glue-json > terraform/schema.json`"
    );
}
