//! Athena's `CAST(json AS ARRAY(T))`, which DataFusion has no cast for: the
//! typed views' array columns (`src/views/sql.rs`) run through this function
//! locally (`athena_sql` rewrites the cast into a call of it). As Trino casts a
//! JSON array: `null` elements are NULL; numbers, strings and booleans convert
//! to `T` as Trino's JSON casts convert them; a value that is not an array, or
//! an element that does not convert, makes the whole value NULL (the views use
//! `TRY_CAST`).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::core::json;
use crate::views::ladder::Scalar;

/// The function's name: `__cast_json_array(json_text, 'bigint')`.
pub const NAME: &str = "__cast_json_array";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CastJsonArray {
    signature: Signature,
}

impl CastJsonArray {
    pub fn new() -> Self {
        CastJsonArray { signature: Signature::any(2, Volatility::Immutable) }
    }
}

/// The element type named by the function's second argument.
fn element_of(args: &[Option<&ScalarValue>]) -> Result<Scalar> {
    let name = args.get(1).copied().flatten().and_then(|value| value.try_as_str().flatten());
    match name.and_then(crate::views::ladder::ColumnType::parse) {
        Some(crate::views::ladder::ColumnType::Scalar(scalar)) if scalar != Scalar::Timestamp => Ok(scalar),
        _ => plan_err!("{NAME}: the second argument must be 'boolean', 'bigint', 'double' or 'varchar'"),
    }
}

fn arrow_type(scalar: Scalar) -> DataType {
    match scalar {
        Scalar::Boolean => DataType::Boolean,
        Scalar::Bigint => DataType::Int64,
        Scalar::Double => DataType::Float64,
        Scalar::Timestamp | Scalar::Varchar => DataType::Utf8,
    }
}

fn list_of(scalar: Scalar) -> DataType {
    DataType::List(Arc::new(Field::new("item", arrow_type(scalar), true)))
}

impl ScalarUDFImpl for CastJsonArray {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        plan_err!("{NAME}: the return type follows from the arguments")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let element = element_of(args.scalar_arguments)?;
        Ok(Arc::new(Field::new(NAME, list_of(element), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ColumnarValue::Scalar(name) = &args.args[1] else {
            return exec_err!("{NAME}: the element type must be a literal");
        };
        let element = element_of(&[None, Some(name)])?;
        let texts = args.args[0].to_array(args.number_rows)?;
        let texts = datafusion::arrow::compute::cast(&texts, &DataType::Utf8)?;
        let texts = datafusion::arrow::array::AsArray::as_string::<i32>(&texts);
        let array: ArrayRef = match element {
            Scalar::Boolean => {
                build(texts, ListBuilder::new(BooleanBuilder::new()), to_boolean, |b, v| b.append_option(v))
            }
            Scalar::Bigint => {
                build(texts, ListBuilder::new(Int64Builder::new()), to_bigint, |b, v| b.append_option(v))
            }
            Scalar::Double => {
                build(texts, ListBuilder::new(Float64Builder::new()), to_double, |b, v| b.append_option(v))
            }
            Scalar::Timestamp | Scalar::Varchar => {
                build(texts, ListBuilder::new(StringBuilder::new()), to_varchar, |b, v| b.append_option(v))
            }
        };
        Ok(ColumnarValue::Array(array))
    }
}

/// One list per row, each element converted by `convert`; a row that is not
/// an array, or has an element (other than `null`) that does not convert, is
/// NULL.
fn build<B: ArrayBuilder, T>(
    texts: &datafusion::arrow::array::StringArray,
    mut builder: ListBuilder<B>,
    convert: impl Fn(&str) -> Option<T>,
    append: impl Fn(&mut B, Option<T>),
) -> ArrayRef {
    let mut elements: Vec<Option<T>> = Vec::new();
    for value in texts.iter() {
        elements.clear();
        let converted = value.filter(|v| v.trim_start().starts_with('[')).is_some_and(|value| {
            json::elements(value).all(|element| {
                if element.starts_with('n') {
                    elements.push(None);
                    return true;
                }
                let value = (!element.starts_with(['[', '{'])).then(|| convert(element)).flatten();
                let converts = value.is_some();
                elements.push(value);
                converts
            })
        });
        if converted {
            elements.drain(..).for_each(|element| append(builder.values(), element));
            builder.append(true);
        } else {
            builder.append_null();
        }
    }
    Arc::new(builder.finish())
}

/// Trino: a JSON boolean, a number (non-zero is true), or a string `true`/`false`.
fn to_boolean(raw: &str) -> Option<bool> {
    match raw.as_bytes().first()? {
        b't' => Some(true),
        b'f' => Some(false),
        b'"' => match json::string_literal(raw)?.as_ref() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => raw.parse::<f64>().ok().map(|n| n != 0.0),
    }
}

/// Trino: an integer; a fraction rounded half up; a string holding an integer;
/// a boolean as 1 or 0.
fn to_bigint(raw: &str) -> Option<i64> {
    match raw.as_bytes().first()? {
        b't' => Some(1),
        b'f' => Some(0),
        b'"' => json::string_literal(raw)?.trim().parse().ok(),
        _ => raw.parse::<i64>().ok().or_else(|| {
            let value: f64 = raw.parse().ok()?;
            let rounded = (value + 0.5).floor();
            (rounded.is_finite() && rounded.abs() < 9.2e18).then_some(rounded as i64)
        }),
    }
}

/// Trino: a number; a string holding one; a boolean as 1.0 or 0.0.
fn to_double(raw: &str) -> Option<f64> {
    match raw.as_bytes().first()? {
        b't' => Some(1.0),
        b'f' => Some(0.0),
        b'"' => json::string_literal(raw)?.trim().parse().ok(),
        _ => raw.parse().ok(),
    }
}

/// Trino: a string's text; an integer's digits as written; another number as
/// Java prints the double; `true`/`false`.
fn to_varchar(raw: &str) -> Option<String> {
    match raw.as_bytes().first()? {
        b'"' => json::string_literal(raw).map(|text| text.into_owned()),
        b't' | b'f' => Some(raw.to_owned()),
        _ if !raw.contains(['.', 'e', 'E']) => Some(raw.to_owned()),
        _ => raw.parse::<f64>().ok().map(|value| json::java_double(value).trim_matches('"').to_owned()),
    }
}
