//! The docs agree with the one schema source.

use eventlake::lake::schema;

#[test]
fn lake_docs_schema_table_matches_the_schema() {
    let lake = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lake.md")).unwrap();
    let arrow = schema::arrow_schema();
    for (column, field) in schema::columns().iter().zip(arrow.fields()) {
        let kind = match (column.athena_type, field.is_nullable()) {
            ("bigint", _) => "int64 / bigint".to_owned(),
            (kind, true) => format!("{kind}, nullable"),
            (kind, false) => kind.to_owned(),
        };
        let row = format!("| `{}` | {kind} | {} |", column.name, column.comment);
        assert!(lake.contains(&row), "docs/lake.md lacks the row:\n{row}");
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

/// Relative links of a Markdown text: `](target)` with no scheme, anchor removed.
fn relative_links(markdown: &str) -> Vec<String> {
    markdown
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(target, _)| target.to_owned()))
        .filter(|target| !target.contains("://") && !target.starts_with("mailto:"))
        .collect()
}

/// The anchors GitHub gives the headings of a Markdown document: lowercase,
/// punctuation but `-` and `_` dropped, spaces as `-`.
fn heading_anchors(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| {
            line.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

#[test]
fn every_relative_link_in_the_docs_resolves_inside_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut documents = vec![root.join("README.md")];
    documents.extend(
        std::fs::read_dir(root.join("docs"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "md")),
    );
    for document in documents {
        let text = std::fs::read_to_string(&document).unwrap();
        let dir = document.parent().unwrap();
        for link in relative_links(&text) {
            let (path, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target =
                if path.is_empty() { document.clone() } else { std::path::absolute(dir.join(path)).unwrap() };
            assert!(
                target.starts_with(root) && target.exists(),
                "{}: link {link:?} does not resolve inside the repository",
                document.display()
            );
            if !anchor.is_empty() {
                let headings = heading_anchors(&std::fs::read_to_string(&target).unwrap());
                assert!(
                    headings.iter().any(|heading| heading == anchor),
                    "{}: link {link:?}: no heading of {} has that anchor",
                    document.display(),
                    target.display()
                );
            }
        }
    }
}

#[test]
fn the_contract_copy_matches_the_shared_contract_when_it_is_beside_the_clone() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = std::fs::read_to_string(root.join("docs/CONTRACT.md")).unwrap();
    assert!(copy.starts_with("# Event contract"));
    // The team's shared contract sits beside the clone in the development setup;
    // a clone on its own has only the copy, which then is the contract.
    if let Ok(shared) = std::fs::read_to_string(root.join("../shared/CONTRACT.md")) {
        assert_eq!(copy, shared, "docs/CONTRACT.md drifted: copy ../shared/CONTRACT.md over it");
    }
}

/// CONTRACT section 4's column table, written out by hand: name and Athena type.
const CONTRACT_COLUMNS: [(&str, &str); 8] = [
    ("event_uuid", "string"),
    ("event_name", "string"),
    ("event_subtype", "string"),
    ("created_at", "bigint"),
    ("created_datetime", "string"),
    ("payload", "string"),
    ("created_ts", "timestamp"),
    ("ingested_at", "timestamp"),
];

#[test]
fn the_columns_the_glue_table_and_the_view_are_the_contracts() {
    let columns: Vec<(&str, &str)> = schema::columns().iter().map(|c| (c.name, c.athena_type)).collect();
    assert_eq!(columns, CONTRACT_COLUMNS);

    let terraform =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/terraform/schema.json")).unwrap();
    let glue: serde_json::Value = serde_json::from_str(&terraform).unwrap();
    let glue_columns: Vec<(&str, &str)> = glue["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
        .collect();
    assert_eq!(glue_columns, CONTRACT_COLUMNS, "terraform/schema.json");

    // The view: the contract's columns, then the partition columns, in that order.
    let view = eventlake::query::EVENTS_UNIQUE_VIEW;
    let select = view.split_once("AS\nSELECT ").unwrap().1.split_once("\nFROM").unwrap().0;
    let listed: Vec<&str> = select.split(',').map(str::trim).collect();
    let mut expected: Vec<&str> = CONTRACT_COLUMNS.iter().map(|(name, _)| *name).collect();
    expected.extend(["event_type", "created_date"]);
    assert_eq!(listed, expected, "athena/ddl/events_unique.sql");
}
