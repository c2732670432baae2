//! Athena SQL that DataFusion does not read as Athena does, made into what it
//! runs: the typed views' text (`src/views/sql.rs`) is this SQL, run unchanged
//! by Athena and through these few rewrites by `eventlake query`.
//!
//! - `CAST(x AS ARRAY(T))` / `TRY_CAST(...)`: a JSON array cast to an array of
//!   `T`, which DataFusion has no cast for, is a call of `__cast_json_array(x,
//!   'T')` (`json_array.rs`, Trino's conversions).
//! - `try(e)`: `e` with its casts made `TRY_CAST` and `from_iso8601_timestamp`
//!   its form that gives NULL instead of an error, the errors Athena's `try`
//!   turns into NULL in what the views use.
//! - `transform(array, x -> e)`: DataFusion's `array_transform`.
//!
//! The text is parsed as ClickHouse's dialect reads it, the one of sqlparser's
//! that knows both `ARRAY(T)` and lambdas; the views never write what that
//! dialect reads otherwise (backslashes in string literals).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, ArrayElemTypeDef, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, Statement, Value,
};
use datafusion::sql::sqlparser::dialect::ClickHouseDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};

use super::functions::TRY_FROM_ISO8601_TIMESTAMP;
use super::json_array;

/// The statements of `sql`, rewritten for DataFusion.
pub fn statements(sql: &str) -> Result<Vec<Statement>, ParserError> {
    let mut statements = Parser::parse_sql(&ClickHouseDialect {}, sql)?;
    let _ = visit_expressions_mut(&mut statements, |expr| {
        rewrite(expr);
        ControlFlow::<()>::Continue(())
    });
    Ok(statements)
}

/// One expression, its parts already rewritten (the visit is bottom-up).
fn rewrite(expr: &mut Expr) {
    match expr {
        Expr::Cast {
            expr: inner,
            data_type: DataType::Array(ArrayElemTypeDef::Parenthesis(element)),
            ..
        } => {
            let element = element.to_string().to_ascii_lowercase();
            let value = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
            *expr = call(json_array::NAME, vec![value, Expr::value(Value::SingleQuotedString(element))]);
        }
        Expr::Function(function) if is_named(&function.name, "try") => {
            if let Some(mut inner) = only_argument(&function.args) {
                let _ = visit_expressions_mut(&mut inner, |part| {
                    try_form(part);
                    ControlFlow::<()>::Continue(())
                });
                *expr = Expr::Nested(Box::new(inner));
            }
        }
        Expr::Function(function) if is_named(&function.name, "transform") => {
            function.name = name_of("array_transform");
        }
        _ => {}
    }
}

/// The form of one expression inside `try(...)` that gives NULL where Athena's
/// would fail.
fn try_form(expr: &mut Expr) {
    match expr {
        Expr::Cast { kind, .. } if *kind == CastKind::Cast || *kind == CastKind::DoubleColon => {
            *kind = CastKind::TryCast;
        }
        Expr::Function(function) if is_named(&function.name, "from_iso8601_timestamp") => {
            function.name = name_of(TRY_FROM_ISO8601_TIMESTAMP);
        }
        _ => {}
    }
}

fn is_named(name: &ObjectName, wanted: &str) -> bool {
    matches!(name.0.as_slice(), [ObjectNamePart::Identifier(ident)] if ident.value.eq_ignore_ascii_case(wanted))
}

fn name_of(name: &str) -> ObjectName {
    ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))])
}

fn only_argument(args: &FunctionArguments) -> Option<Expr> {
    let FunctionArguments::List(list) = args else { return None };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(inner))] => Some(inner.clone()),
        _ => None,
    }
}

/// `name(args...)`, built by parsing a call and putting the arguments in.
fn call(name: &str, args: Vec<Expr>) -> Expr {
    let placeholders = vec!["NULL"; args.len()].join(", ");
    let mut parsed = Parser::new(&ClickHouseDialect {})
        .try_with_sql(&format!("{name}({placeholders})"))
        .and_then(|mut parser| parser.parse_expr())
        .unwrap_or(Expr::value(Value::Null));
    if let Expr::Function(function) = &mut parsed {
        if let FunctionArguments::List(list) = &mut function.args {
            for (slot, arg) in list.args.iter_mut().zip(args) {
                *slot = FunctionArg::Unnamed(FunctionArgExpr::Expr(arg));
            }
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        statements(sql).unwrap().iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn athena_forms_become_datafusion_calls() {
        assert_eq!(
            rewritten("SELECT TRY_CAST(json_extract(payload, '$[\"a\"]') AS ARRAY(BIGINT)) AS a FROM t"),
            "SELECT __cast_json_array(json_extract(payload, '$[\"a\"]'), 'bigint') AS a FROM t"
        );
        assert_eq!(
            rewritten(
                "SELECT try(CAST(from_iso8601_timestamp(x) AT TIME ZONE 'UTC' AS TIMESTAMP(3))) FROM t"
            ),
            "SELECT (TRY_CAST(__try_from_iso8601_timestamp(x) AT TIME ZONE 'UTC' AS TIMESTAMP(3))) FROM t"
        );
        assert_eq!(
            rewritten("SELECT transform(a, x -> x + 1) FROM t"),
            "SELECT array_transform(a, x -> x + 1) FROM t"
        );
        assert_eq!(
            rewritten("SELECT from_iso8601_timestamp(x) FROM t"),
            "SELECT from_iso8601_timestamp(x) FROM t"
        );
    }
}
