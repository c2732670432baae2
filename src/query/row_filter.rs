//! `eventlake tail --type T --where EXPR`: a boolean expression over an event's
//! columns, the `events` table's (the file columns and the partition columns
//! `event_type` and `created_date`), parsed, type-checked and evaluated by the
//! query engine with Athena's functions, a batch of events at a time. An
//! expression, not a program: no subqueries, no tables, nothing that writes.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{col, lit, Expr};
use datafusion::physical_plan::PhysicalExpr;
use datafusion::prelude::SessionContext;

use super::QueryError;
use crate::core::event::Event;
use crate::lake::encoder::{record_batch, Row};

/// A compiled filter over events.
pub struct EventFilter {
    schema: SchemaRef,
    predicate: Arc<dyn PhysicalExpr>,
}

impl EventFilter {
    /// The filter keeping events of `event_type` (if given) for which `where_sql`
    /// (if given) is true; `None` when neither is given. Refuses an expression
    /// that does not parse, names an unknown column or function, or is not boolean.
    pub fn new(event_type: Option<&str>, where_sql: Option<&str>) -> Result<Option<Self>, QueryError> {
        let ctx = SessionContext::new();
        for udf in super::functions::all() {
            ctx.register_udf(udf);
        }
        let schema = schema();
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        let mut parts: Vec<Expr> = event_type.map(|t| col("event_type").eq(lit(t))).into_iter().collect();
        if let Some(sql) = where_sql {
            super::check_size(sql)?;
            parts.push(ctx.parse_sql_expr(sql, &df_schema)?);
        }
        let Some(expr) = parts.into_iter().reduce(Expr::and) else { return Ok(None) };
        let predicate = ctx.create_physical_expr(expr, &df_schema)?;
        let data_type = predicate.data_type(&schema)?;
        if data_type != DataType::Boolean {
            return Err(QueryError::Sql(DataFusionError::Plan(format!(
                "--where must be true or false for an event; `{}` is {data_type}",
                where_sql.unwrap_or_default()
            ))));
        }
        Ok(Some(EventFilter { schema, predicate }))
    }

    /// Whether each of `events` passes (NULL does not), read at `ingested_at_millis`.
    pub fn matches(&self, events: &[Event<'_>], ingested_at_millis: i64) -> Result<Vec<bool>, QueryError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let batch = self.batch(events, ingested_at_millis)?;
        let value = self.predicate.evaluate(&batch)?;
        let array = value.into_array(batch.num_rows())?;
        let Some(booleans) = array.as_boolean_opt() else {
            return Err(QueryError::Sql(DataFusionError::Internal("--where gave no booleans".into())));
        };
        Ok((0..booleans.len()).map(|i| booleans.is_valid(i) && booleans.value(i)).collect())
    }

    /// Whether each of `events` passes, or why the expression could not be
    /// evaluated on it: the whole batch at once, and event by event only when
    /// the batch fails (a strict CAST of one value that does not fit), so one
    /// event never fails its neighbours.
    pub fn matches_each(&self, events: &[Event<'_>], ingested_at_millis: i64) -> Vec<Result<bool, String>> {
        match self.matches(events, ingested_at_millis) {
            Ok(kept) => kept.into_iter().map(Ok).collect(),
            Err(_) => events
                .iter()
                .map(|event| {
                    self.matches(std::slice::from_ref(event), ingested_at_millis)
                        .map(|kept| kept.first().copied().unwrap_or(false))
                        .map_err(|error| error.to_string())
                })
                .collect(),
        }
    }

    /// The events as rows of `events`: the columns a lake file holds, then the partition columns.
    fn batch(&self, events: &[Event<'_>], ingested_at_millis: i64) -> Result<RecordBatch, QueryError> {
        let payloads: Vec<String> = events
            .iter()
            .map(|event| {
                let mut payload = Vec::new();
                event.write_payload(&mut payload);
                String::from_utf8(payload).unwrap_or_default()
            })
            .collect();
        let rows: Vec<Row<'_>> = events
            .iter()
            .zip(&payloads)
            .map(|(event, payload)| Row {
                uuid: event.uuid(),
                name: event.name(),
                subtype: event.event_subtype(),
                time: event.time(),
                payload,
            })
            .collect();
        let file_columns = record_batch(&rows, ingested_at_millis)
            .map_err(|error| QueryError::Sql(DataFusionError::External(Box::new(error))))?;
        let event_types: ArrayRef =
            Arc::new(StringArray::from_iter_values(events.iter().map(Event::event_type)));
        let dates: ArrayRef = Arc::new(StringArray::from_iter_values(
            events.iter().map(|event| event.time().created_date().to_string()),
        ));
        let mut columns = file_columns.columns().to_vec();
        columns.extend([event_types, dates]);
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// `events`' columns: the file columns, then the partition columns (text).
fn schema() -> SchemaRef {
    let file = crate::lake::schema::arrow_schema();
    let partition =
        crate::core::partition::KEYS.iter().map(|name| Arc::new(Field::new(*name, DataType::Utf8, false)));
    Arc::new(Schema::new(file.fields().iter().cloned().chain(partition).collect::<Vec<_>>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(lines: &[&'static str]) -> Vec<Event<'static>> {
        lines.iter().map(|line| Event::parse(line.as_bytes()).unwrap()).collect()
    }

    const EVENTS: [&str; 3] = [
        r#"{"event_uuid":"00000000-0000-0000-0000-000000000001","event_name":"payment:order:completed","created_at":1710689696,"amount":120.5,"currency":"EUR"}"#,
        r#"{"event_uuid":"00000000-0000-0000-0000-000000000002","event_name":"payment:order:failed","created_at":1710689697,"amount":9}"#,
        r#"{"event_uuid":"00000000-0000-0000-0000-000000000003","event_name":"user:signup","created_at":1710776096}"#,
    ];

    #[test]
    fn type_and_where_pick_events_by_their_columns_and_payload() {
        let events = events(&EVENTS);
        let filter = |t: Option<&str>, w: Option<&str>| {
            EventFilter::new(t, w).unwrap().unwrap().matches(&events, 0).unwrap()
        };
        assert_eq!(filter(Some("payment"), None), [true, true, false]);
        assert_eq!(
            filter(None, Some("event_subtype = 'order' AND created_date = '2024-03-17'")),
            [true, true, false]
        );
        assert_eq!(
            filter(None, Some("CAST(json_extract_scalar(payload, '$.amount') AS DOUBLE) > 100")),
            [true, false, false]
        );
        assert_eq!(
            filter(Some("user"), Some("created_ts >= TIMESTAMP '2024-03-18 00:00:00'")),
            [false, false, true]
        );
        // NULL (no amount) does not pass.
        assert_eq!(
            filter(None, Some("json_extract_scalar(payload, '$.amount') <> '9'")),
            [true, false, false]
        );
    }

    #[test]
    fn an_event_the_expression_fails_on_is_left_out_and_its_neighbours_are_judged() {
        let events = events(&EVENTS);
        let strict =
            EventFilter::new(None, Some("CAST(json_extract_scalar(payload, '$.currency') AS DOUBLE) > 0"))
                .unwrap()
                .unwrap();
        assert!(strict.matches(&events, 0).is_err(), "the batch fails on EUR");
        let each = strict.matches_each(&events, 0);
        assert!(each[0].as_ref().is_err_and(|reason| reason.contains("EUR")), "{each:?}");
        assert_eq!(each[1..], [Ok(false), Ok(false)], "no currency: NULL, not kept, not an error");
    }

    #[test]
    fn no_filter_is_none_and_a_wrong_expression_is_refused_with_the_engines_reason() {
        assert!(EventFilter::new(None, None).unwrap().is_none());
        let error = |w| EventFilter::new(None, Some(w)).err().unwrap().to_string();
        assert!(error("no_such_column = 1").contains("no_such_column"), "{}", error("no_such_column = 1"));
        assert!(error("created_at + 1").contains("must be true or false"), "{}", error("created_at + 1"));
        assert!(EventFilter::new(None, Some("event_type = (SELECT 1)")).is_err());
        assert!(EventFilter::new(None, Some("1 = 1; DROP TABLE events")).is_err());
    }
}
