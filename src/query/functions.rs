//! Athena (Trino) functions DataFusion lacks, or has with another meaning,
//! registered under Athena's names so `athena/queries/` runs unchanged.
//!
//! Timestamps are `Timestamp(Millisecond, "UTC")`: Athena's
//! `timestamp(3) with time zone` for the UTC zone the lake uses.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, StringArray, StringBuilder, TimestampMillisecondArray,
    TimestampMillisecondBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef, TimeUnit};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::value::RawValue;

use crate::core::json::{string_literal, value_at, PathStep};
use crate::core::timestamp::created_datetime_millis;

/// Every function this module adds, ready for `SessionContext::register_udf`.
pub fn all() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(Function::new(Kind::JsonExtractScalar)),
        ScalarUDF::from(Function::new(Kind::JsonExtract)),
        ScalarUDF::from(Function::new(Kind::FromIso8601Timestamp)),
        ScalarUDF::from(Function::new(Kind::TryFromIso8601Timestamp)),
        ScalarUDF::from(Function::new(Kind::JsonFormat)),
        ScalarUDF::from(super::json_array::CastJsonArray::new()),
        ScalarUDF::from(Function::new(Kind::FromUnixtime)),
        ScalarUDF::from(Function::new(Kind::ToUnixtime)),
        ScalarUDF::from(Function::new(Kind::DateFormat)),
    ]
}

/// The functions that build a value larger than their arguments, DataFusion's
/// own, checked first: `repeat`, `lpad`, `rpad`, `replace`, `regexp_replace`,
/// `array_repeat`, `array_resize`, `range` and `generate_series`. A call whose result could take
/// more than `limit_bytes` fails with an error rather than ask the allocator for
/// it (which aborts the process, or takes the machine's memory). Their output is
/// the one thing a query can grow without bound from a small lake; operators that
/// buffer (sorts, aggregates, joins) are bounded by the session's memory pool.
pub fn bounded_string_functions(limit_bytes: usize) -> Vec<ScalarUDF> {
    use datafusion::functions::{regex, string, unicode};
    use datafusion::functions_nested::{range, repeat, resize};
    [
        (string::repeat(), Growth::Repeat),
        (unicode::lpad(), Growth::PadTo),
        (unicode::rpad(), Growth::PadTo),
        (string::replace(), Growth::Replace),
        (regex::regexp_replace(), Growth::RegexpReplace),
        (repeat::array_repeat_udf(), Growth::ArrayRepeat),
        (resize::array_resize_udf(), Growth::ArrayResize),
        (range::range_udf(), Growth::Range),
        (range::gen_series_udf(), Growth::Range),
    ]
    .into_iter()
    .map(|(inner, growth)| ScalarUDF::new_from_impl(Bounded { inner, limit_bytes, growth }))
    .collect()
}

/// How a bounded function's output size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: `len(s) * n` bytes.
    Repeat,
    /// `lpad(s, n[, fill])`: `n` characters, at most 4 bytes each.
    PadTo,
    /// `replace(s, from, to)`: each occurrence of `from` (at every position when
    /// it is empty) becomes `to`.
    Replace,
    /// `regexp_replace(s, pattern, replacement[, flags])`: one match, or with
    /// flag `g` one at every position, each becoming the replacement with its
    /// group references (`\\1`, `$1`) as long as `s` at most.
    RegexpReplace,
    /// `array_repeat(element, n)`: `n` elements.
    ArrayRepeat,
    /// `array_resize(array, n[, fill])`: `n` elements.
    ArrayResize,
    /// `range(start, stop[, step])` and `generate_series`: one 8-byte value per
    /// step from start to stop.
    Range,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    limit_bytes: usize,
    growth: Growth,
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bytes = output_bytes(self.growth, &args.args, args.number_rows)?;
        if bytes > self.limit_bytes as u128 {
            return exec_err!(
                "{}() would build {bytes} bytes, over the query's memory limit of {} bytes (--memory-mib)",
                self.name(),
                self.limit_bytes
            );
        }
        self.inner.invoke_with_args(args)
    }
}

/// The most bytes a bounded function's result can take for `args` over `rows`
/// rows: the sum of each row's bound. A scalar argument is read once, never
/// copied per row (that copy alone could be the allocation the check is there to
/// prevent). A bound that cannot be computed (an argument of a type the function
/// rejects anyway) is 0: the function reports the error itself.
fn output_bytes(growth: Growth, args: &[ColumnarValue], rows: usize) -> Result<u128> {
    use datafusion::arrow::datatypes::Int64Type;
    let columns: Vec<ArrayRef> = args
        .iter()
        .map(|arg| match arg {
            ColumnarValue::Array(array) => Ok(array.clone()),
            ColumnarValue::Scalar(scalar) => scalar.to_array_of_size(1),
        })
        .collect::<Result<_>>()?;
    // Each column converted once per call (strings as Utf8, counts as Int64) and
    // read per row by reference: a large constant is never copied per row.
    let is_text = |array: &ArrayRef| {
        matches!(array.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
    };
    let texts: Vec<Option<ArrayRef>> = columns
        .iter()
        .map(|array| is_text(array).then(|| cast(array, &DataType::Utf8).ok()).flatten())
        .collect();
    let counts: Vec<Option<ArrayRef>> = columns
        .iter()
        .map(|array| (!is_text(array)).then(|| cast(array, &DataType::Int64).ok()).flatten())
        .collect();
    // A one-value array stands for a scalar: the same value on every row.
    let at = |array: &ArrayRef, row: usize| if array.len() == 1 { 0 } else { row };
    let text = |column: usize, row: usize| -> &str {
        match texts.get(column).and_then(Option::as_ref) {
            Some(array) if !array.is_null(at(array, row)) => array.as_string::<i32>().value(at(array, row)),
            _ => "",
        }
    };
    let text_len = |column: usize, row: usize| text(column, row).len() as u128;
    let count = |column: usize, row: usize| -> u128 {
        match counts.get(column).and_then(Option::as_ref) {
            Some(array) if !array.is_null(at(array, row)) => {
                array.as_primitive::<Int64Type>().value(at(array, row)).max(0) as u128
            }
            _ => 0,
        }
    };
    // Only for the few small values a range or an element's size needs.
    let value = |column: usize, row: usize| -> Option<ScalarValue> {
        let array = columns.get(column)?;
        ScalarValue::try_from_array(array, at(array, row)).ok().filter(|value| !value.is_null())
    };
    let element_bytes = |column: usize, row: usize| -> u128 {
        if texts.get(column).is_some_and(Option::is_some) {
            text_len(column, row) + 16
        } else {
            value(column, row).map_or(0, |element| element.size() as u128)
        }
    };
    let mut total = 0_u128;
    for row in 0..rows {
        total += match growth {
            Growth::Repeat => count(1, row) * text_len(0, row),
            Growth::PadTo => count(1, row) * 4,
            Growth::Replace => {
                let (len, from, to) = (text_len(0, row), text_len(1, row), text_len(2, row));
                let occurrences = len.checked_div(from).unwrap_or(len + 1);
                len + occurrences * to
            }
            Growth::RegexpReplace => {
                let (len, replacement) = (text_len(0, row), text(2, row));
                let global = args.len() > 3 && text(3, row).contains('g');
                let references = replacement.matches(['\\', '$']).count() as u128;
                let each = replacement.len() as u128 + references * len;
                let matches = if global { len + 1 } else { 1 };
                len + matches * each
            }
            Growth::ArrayRepeat => count(1, row) * element_bytes(0, row).max(8),
            Growth::ArrayResize => count(1, row) * element_bytes(2, row).max(8),
            Growth::Range => range_steps(args.len(), &value, row) * 8,
        };
    }
    Ok(total)
}

/// How many values `range`/`generate_series` makes on `row` (one more than the
/// steps between start and stop): integers, dates (days) and timestamps
/// (nanoseconds), with an interval step counted at its shortest (28-day months).
fn range_steps(arity: usize, value: &dyn Fn(usize, usize) -> Option<ScalarValue>, row: usize) -> u128 {
    const DAY_NANOS: i128 = 86_400_000_000_000;
    let temporal = (0..arity.min(2))
        .any(|column| value(column, row).is_some_and(|value| value.data_type().is_temporal()));
    if temporal && arity < 3 {
        return 0; // a date or time range needs its step: the function says so
    }
    let nanos = |value: Option<ScalarValue>| -> Option<i128> {
        Some(match value? {
            ScalarValue::Date32(Some(days)) => i128::from(days) * DAY_NANOS,
            ScalarValue::Date64(Some(millis)) => i128::from(millis) * 1_000_000,
            ScalarValue::TimestampSecond(Some(t), _) => i128::from(t) * 1_000_000_000,
            ScalarValue::TimestampMillisecond(Some(t), _) => i128::from(t) * 1_000_000,
            ScalarValue::TimestampMicrosecond(Some(t), _) => i128::from(t) * 1_000,
            ScalarValue::TimestampNanosecond(Some(t), _) => i128::from(t),
            ScalarValue::IntervalMonthDayNano(Some(step)) => {
                i128::from(step.months) * 28 * DAY_NANOS
                    + i128::from(step.days) * DAY_NANOS
                    + i128::from(step.nanoseconds)
            }
            ScalarValue::IntervalDayTime(Some(step)) => {
                i128::from(step.days) * DAY_NANOS + i128::from(step.milliseconds) * 1_000_000
            }
            ScalarValue::IntervalYearMonth(Some(months)) => i128::from(months) * 28 * DAY_NANOS,
            other => match other.cast_to(&DataType::Int64).ok()? {
                ScalarValue::Int64(Some(n)) => i128::from(n),
                _ => return None,
            },
        })
    };
    let (start, stop, step) = match arity {
        1 => (Some(0), nanos(value(0, row)), Some(1)),
        2 => (nanos(value(0, row)), nanos(value(1, row)), Some(1)),
        _ => (nanos(value(0, row)), nanos(value(1, row)), nanos(value(2, row))),
    };
    match (start, stop, step) {
        (Some(start), Some(stop), Some(step)) if step != 0 => {
            (stop.abs_diff(start) / step.unsigned_abs()) + 1
        }
        _ => 0,
    }
}

/// The name `athena_sql` gives `from_iso8601_timestamp` inside `try(...)`.
pub const TRY_FROM_ISO8601_TIMESTAMP: &str = "__try_from_iso8601_timestamp";

/// The zone-aware millisecond timestamp type the functions use.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    JsonExtractScalar,
    JsonExtract,
    /// Athena's `json_format(json)`: locally a JSON value is its text already.
    JsonFormat,
    FromIso8601Timestamp,
    /// `from_iso8601_timestamp` inside Athena's `try(...)`: NULL where the
    /// value is not ISO 8601 instead of an error (`athena_sql` calls it).
    TryFromIso8601Timestamp,
    FromUnixtime,
    ToUnixtime,
    DateFormat,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Function {
    kind: Kind,
    signature: Signature,
}

impl Function {
    fn new(kind: Kind) -> Self {
        Function { kind, signature: Signature::user_defined(Volatility::Immutable) }
    }

    /// Argument types after coercion.
    fn parameters(&self) -> Vec<DataType> {
        match self.kind {
            Kind::JsonExtractScalar | Kind::JsonExtract => vec![DataType::Utf8, DataType::Utf8],
            Kind::JsonFormat | Kind::FromIso8601Timestamp | Kind::TryFromIso8601Timestamp => {
                vec![DataType::Utf8]
            }
            Kind::FromUnixtime => vec![DataType::Float64],
            Kind::ToUnixtime => vec![timestamp_type()],
            Kind::DateFormat => vec![timestamp_type(), DataType::Utf8],
        }
    }
}

impl ScalarUDFImpl for Function {
    fn name(&self) -> &str {
        match self.kind {
            Kind::JsonExtractScalar => "json_extract_scalar",
            Kind::JsonExtract => "json_extract",
            Kind::JsonFormat => "json_format",
            Kind::FromIso8601Timestamp => "from_iso8601_timestamp",
            Kind::TryFromIso8601Timestamp => TRY_FROM_ISO8601_TIMESTAMP,
            Kind::FromUnixtime => "from_unixtime",
            Kind::ToUnixtime => "to_unixtime",
            Kind::DateFormat => "date_format",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let parameters = self.parameters();
        if arg_types.len() != parameters.len() {
            return plan_err!(
                "{} takes {} argument(s), got {}",
                self.name(),
                parameters.len(),
                arg_types.len()
            );
        }
        for (given, wanted) in arg_types.iter().zip(&parameters) {
            if !coercible(given, wanted) {
                return plan_err!("{}: cannot use {given} where {wanted} is expected", self.name());
            }
        }
        // A string argument the function reads in any layout is taken as it
        // comes: a cast of Utf8View to Utf8 would copy every payload.
        let reads_any_layout = |position| match self.kind {
            Kind::JsonExtractScalar | Kind::JsonExtract => true,
            Kind::FromIso8601Timestamp | Kind::TryFromIso8601Timestamp | Kind::JsonFormat => position == 0,
            _ => false,
        };
        Ok(arg_types
            .iter()
            .zip(parameters)
            .enumerate()
            .map(|(position, (given, wanted))| {
                if wanted == DataType::Utf8 && is_string(given) && reads_any_layout(position) {
                    given.clone()
                } else {
                    wanted
                }
            })
            .collect())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::JsonExtractScalar | Kind::JsonExtract | Kind::JsonFormat | Kind::DateFormat => {
                DataType::Utf8
            }
            Kind::FromIso8601Timestamp | Kind::TryFromIso8601Timestamp | Kind::FromUnixtime => {
                timestamp_type()
            }
            Kind::ToUnixtime => DataType::Float64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = || ColumnarValue::values_to_arrays(&args.args);
        let result: ArrayRef = match self.kind {
            Kind::JsonExtractScalar => json_extract(&args.args, args.number_rows, Extract::Scalar)?,
            Kind::JsonExtract => json_extract(&args.args, args.number_rows, Extract::Json)?,
            Kind::JsonFormat => cast(&arrays()?[0], &DataType::Utf8)?,
            Kind::FromIso8601Timestamp => Arc::new(from_iso8601(&arrays()?[0], Invalid::Error)?),
            Kind::TryFromIso8601Timestamp => Arc::new(from_iso8601(&arrays()?[0], Invalid::Null)?),
            Kind::FromUnixtime => Arc::new(from_unixtime(&arrays()?[0])),
            Kind::ToUnixtime => Arc::new(to_unixtime(&arrays()?[0])),
            Kind::DateFormat => Arc::new(date_format(&arrays()?)?),
        };
        Ok(ColumnarValue::Array(result))
    }
}

/// Whether DataFusion can cast `given` to `wanted` the way Athena would accept it.
fn coercible(given: &DataType, wanted: &DataType) -> bool {
    match wanted {
        DataType::Utf8 => is_string(given) || given.is_null(),
        DataType::Float64 => given.is_numeric() || given.is_null(),
        DataType::Timestamp(..) => {
            matches!(given, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64) || given.is_null()
        }
        _ => false,
    }
}

fn is_string(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// What `json_extract*` returns for the value found.
#[derive(Clone, Copy)]
enum Extract {
    /// `json_extract_scalar`: a string's text, a number's or boolean's JSON text;
    /// NULL for objects, arrays and `null`.
    Scalar,
    /// `json_extract`: the value as JSON text, written as Athena writes it back
    /// (`core::json::write_like_athena`).
    Json,
}

/// Parses the JSONPath subset Athena's `json_extract*` documents: `$`, then any of
/// `.key`, `["key"]`, `[index]`.
fn parse_path(path: &str) -> Result<Vec<PathStep>> {
    let Some(mut rest) = path.trim().strip_prefix('$') else {
        return exec_err!("invalid JSON path {path:?}: it must start with $");
    };
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return exec_err!("invalid JSON path {path:?}: empty key after '.'");
            }
            steps.push(PathStep::Key(after[..end].to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("[\"") {
            // As Athena reads it: `\"` and `\\` stand for `"` and `\`.
            let (mut key, mut escaped, mut close) = (String::new(), false, None);
            for (at, c) in after.char_indices() {
                match (escaped, c) {
                    (true, '"' | '\\') => (key.push(c), escaped = false).1,
                    (true, _) => return exec_err!("invalid JSON path {path:?}: \\{c} in a quoted key"),
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        close = Some(at);
                        break;
                    }
                    (false, c) => key.push(c),
                }
            }
            let Some(close) = close.filter(|&at| after[at + 1..].starts_with(']')) else {
                return exec_err!("invalid JSON path {path:?}: unterminated [\"");
            };
            steps.push(PathStep::Key(key));
            rest = &after[close + 2..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').unwrap_or(after.len());
            let Ok(index) = after[..end].trim().parse() else {
                return exec_err!("invalid JSON path {path:?}: [{}] is not an array index", &after[..end]);
            };
            steps.push(PathStep::Index(index));
            rest = after.get(end + 1..).unwrap_or_default();
        } else {
            return exec_err!("invalid JSON path {path:?}: unexpected {rest:?}");
        }
    }
    Ok(steps)
}

/// What `json_extract*` returns for the value `steps` lead to in `json`; `None`
/// (NULL in SQL) when there is none, or when the value found is not valid JSON.
/// The text around the value is scanned, not parsed (`core::json::value_at`).
fn extract<'a>(json: &'a str, steps: &[PathStep], how: Extract) -> Option<Cow<'a, str>> {
    let text = value_at(json, steps)?;
    match (how, text.as_bytes()[0]) {
        (Extract::Scalar, b'"') => string_literal(text),
        (Extract::Scalar, b'{' | b'[' | b'n') => None,
        (Extract::Scalar, _) => serde_json::from_str::<&RawValue>(text).ok().map(|_| Cow::Borrowed(text)),
        (Extract::Json, _) => {
            let mut athena = String::with_capacity(text.len());
            crate::core::json::write_like_athena(text, &mut athena).map(|()| Cow::Owned(athena))
        }
    }
}

/// `json_extract*` over a batch. A literal path (the usual case) is parsed once
/// per batch, and a bad one is an error whatever the rows hold, as in Athena,
/// which compiles a constant path with the query; a column of paths is parsed
/// once per change of value, and only on rows with JSON to read.
fn json_extract(args: &[ColumnarValue], rows: usize, how: Extract) -> Result<ArrayRef> {
    let (literal, paths) = match &args[1] {
        ColumnarValue::Scalar(path) => (Some(path.try_as_str().flatten().map(parse_path).transpose()?), None),
        ColumnarValue::Array(paths) => (None, Some(cast(paths, &DataType::Utf8)?)),
    };
    let paths = paths.as_ref().map(|paths| paths.as_string::<i32>());
    let json = args[0].to_array(rows)?;
    let mut out = StringBuilder::with_capacity(rows, rows * 8);
    let mut last: Option<(&str, Vec<PathStep>)> = None;
    let mut failed = None;
    string_values(&json, |row, text| {
        let steps = match (&literal, paths) {
            (Some(steps), _) => steps.as_deref(),
            (None, Some(paths)) if text.is_some() && !paths.is_null(row) => {
                let path = paths.value(row);
                if last.as_ref().is_none_or(|(previous, _)| *previous != path) {
                    match parse_path(path) {
                        Ok(steps) => last = Some((path, steps)),
                        Err(error) => {
                            failed.get_or_insert(error);
                            last = None;
                        }
                    }
                }
                last.as_ref().map(|(_, steps)| steps.as_slice())
            }
            _ => None,
        };
        match text.zip(steps).and_then(|(text, steps)| extract(text, steps, how)) {
            Some(value) => out.append_value(value),
            None => out.append_null(),
        }
    });
    match failed {
        Some(error) => Err(error),
        None => Ok(Arc::new(out.finish())),
    }
}

/// Calls `each(row, value)` for every row of a string array of any of Arrow's
/// three layouts, without converting it.
fn string_values(array: &ArrayRef, mut each: impl FnMut(usize, Option<&str>)) {
    fn over<'a>(values: impl Iterator<Item = Option<&'a str>>, each: &mut impl FnMut(usize, Option<&str>)) {
        values.enumerate().for_each(|(row, value)| each(row, value));
    }
    match array.data_type() {
        DataType::Utf8View => over(array.as_string_view().iter(), &mut each),
        DataType::LargeUtf8 => over(array.as_string::<i64>().iter(), &mut each),
        DataType::Null => (0..array.len()).for_each(|row| each(row, None)),
        _ => over(array.as_string::<i32>().iter(), &mut each),
    }
}

/// Athena's `from_iso8601_timestamp`: an ISO 8601 date or date-time; without a zone
/// the time is UTC (the session zone Athena uses by default).
fn parse_iso8601(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Some(time.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

/// What `from_iso8601_timestamp` does with a value that is not ISO 8601.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Invalid {
    Error,
    Null,
}

fn from_iso8601(array: &ArrayRef, invalid_is: Invalid) -> Result<TimestampMillisecondArray> {
    let mut out = TimestampMillisecondBuilder::with_capacity(array.len());
    let mut invalid = None;
    string_values(array, |_, text| match text {
        None => out.append_null(),
        Some(text) => {
            match created_datetime_millis(text).or_else(|| parse_iso8601(text).map(|t| t.timestamp_millis()))
            {
                Some(millis) => out.append_value(millis),
                None => {
                    invalid.get_or_insert_with(|| text.to_owned());
                    out.append_null();
                }
            }
        }
    });
    if let Some(text) = invalid.filter(|_| invalid_is == Invalid::Error) {
        return exec_err!("from_iso8601_timestamp: invalid ISO 8601 value {text:?}");
    }
    Ok(out.finish().with_timezone("UTC"))
}

fn from_unixtime(array: &ArrayRef) -> TimestampMillisecondArray {
    let seconds = array.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    let millis: Vec<Option<i64>> =
        seconds.iter().map(|s| s.map(|s| (s * 1000.0).round()).map(|ms| ms as i64)).collect();
    TimestampMillisecondArray::from(millis).with_timezone("UTC")
}

fn to_unixtime(array: &ArrayRef) -> Float64Array {
    let millis = array.as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>();
    millis.iter().map(|ms| ms.map(|ms| ms as f64 / 1000.0)).collect()
}

/// Translates an Athena (MySQL-style) `date_format` pattern into a chrono one.
fn chrono_pattern(format: &str) -> Result<String> {
    let mut out = String::with_capacity(format.len() * 2);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let spec = chars.next();
        out.push_str(match spec {
            Some('a') => "%a",
            Some('b') => "%b",
            Some('c') => "%-m",
            Some('d') => "%d",
            Some('e') => "%-d",
            Some('f') => "%6f",
            Some('H') => "%H",
            Some('h' | 'I') => "%I",
            Some('i') => "%M",
            Some('j') => "%j",
            Some('k') => "%-H",
            Some('l') => "%-I",
            Some('M') => "%B",
            Some('m') => "%m",
            Some('p') => "%p",
            Some('r') => "%I:%M:%S %p",
            Some('S' | 's') => "%S",
            Some('T') => "%H:%M:%S",
            Some('v') => "%V",
            Some('W') => "%A",
            Some('x') => "%G",
            Some('Y') => "%Y",
            Some('y') => "%y",
            Some('%') => "%%",
            Some(other) => {
                return exec_err!("date_format: %{other} is not supported (Athena rejects it too)")
            }
            None => return exec_err!("date_format: pattern {format:?} ends with a lone %"),
        });
    }
    Ok(out)
}

fn date_format(arrays: &[ArrayRef]) -> Result<StringArray> {
    let times = arrays[0].as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>();
    let formats = arrays[1].as_string::<i32>();
    let mut translated: Option<(&str, String)> = None;
    let mut out = Vec::with_capacity(times.len());
    for row in 0..times.len() {
        if times.is_null(row) || formats.is_null(row) {
            out.push(None);
            continue;
        }
        let format = formats.value(row);
        if translated.as_ref().is_none_or(|(last, _)| *last != format) {
            translated = Some((format, chrono_pattern(format)?));
        }
        let pattern = translated.as_ref().map(|(_, p)| p.as_str()).unwrap_or_default();
        let Some(time) = DateTime::<Utc>::from_timestamp_millis(times.value(row)) else {
            return exec_err!("date_format: timestamp {} ms is out of range", times.value(row));
        };
        out.push(Some(time.format(pattern).to_string()));
    }
    Ok(StringArray::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract_path(json: &str, path: &str, how: Extract) -> Option<String> {
        extract(json, &parse_path(path).unwrap(), how).map(Cow::into_owned)
    }

    #[test]
    fn json_extract_scalar_follows_athena() {
        let json = r#"{"user_id":"u_1","amount":12.50,"ok":true,"n":null,"o":{"a":[1,{"b":"x\u00e9"}]},"big":123456789012345678901234567890,"d":1,"d":2}"#;
        let scalar = |path| extract_path(json, path, Extract::Scalar);
        assert_eq!(scalar("$.user_id").as_deref(), Some("u_1"));
        assert_eq!(scalar("$.amount").as_deref(), Some("12.50"), "number text kept as written");
        assert_eq!(scalar("$.big").as_deref(), Some("123456789012345678901234567890"));
        assert_eq!(scalar("$.ok").as_deref(), Some("true"));
        assert_eq!(scalar("$.o.a[1].b").as_deref(), Some("x\u{e9}"));
        assert_eq!(scalar("$[\"o\"][\"a\"][0]").as_deref(), Some("1"));
        assert_eq!(scalar("$.d").as_deref(), Some("1"), "first of duplicate keys");
        for path in ["$.n", "$.o", "$.o.a", "$.missing", "$.o.a[9]", "$.user_id.x"] {
            assert_eq!(scalar(path), None, "{path}");
        }
        assert_eq!(extract_path(json, "$.o.a", Extract::Json).as_deref(), Some("[1,{\"b\":\"x\u{e9}\"}]"));
        assert_eq!(extract_path("not json", "$.a", Extract::Scalar), None);
        // The value found is parsed: broken values are NULL, escapes are decoded.
        for broken in
            [r#"{"a":12x}"#, r#"{"a":"x\q"}"#, "{\"a\":\"tab\there\"}", r#"{"a":tru}"#, r#"{"a":[1,}"#]
        {
            assert_eq!(extract_path(broken, "$.a", Extract::Scalar), None, "{broken}");
            assert_eq!(extract_path(broken, "$.a", Extract::Json), None, "{broken}");
        }
        assert_eq!(extract_path(r#"{"a":"\"x\"\n"}"#, "$.a", Extract::Scalar).as_deref(), Some("\"x\"\n"));
        assert_eq!(extract_path(r#"{"a":"x", "b":oops"#, "$.a", Extract::Scalar).as_deref(), Some("x"));
        for bad in ["a", "$.", "$[x]", "$[\"a", "$a"] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_extract_reads_any_string_layout_and_paths_only_where_there_is_json() {
        use datafusion::arrow::array::StringViewArray;
        use datafusion::common::ScalarValue;
        let run = |json: ArrayRef, path: ColumnarValue| {
            let rows = json.len();
            json_extract(&[ColumnarValue::Array(json), path], rows, Extract::Scalar)
                .map(|out| out.as_string::<i32>().iter().map(|v| v.map(str::to_owned)).collect::<Vec<_>>())
        };
        let json: ArrayRef =
            Arc::new(StringArray::from(vec![Some(r#"{"a":1}"#), None, Some(r#"{"b":"y"}"#)]));
        let paths: ArrayRef = Arc::new(StringArray::from(vec![Some("$.a"), Some("not a path"), Some("$.b")]));
        let found = run(json.clone(), ColumnarValue::Array(paths)).unwrap();
        assert_eq!(found, [Some("1".to_owned()), None, Some("y".to_owned())], "no JSON, no path to read");
        let bad: ArrayRef = Arc::new(StringArray::from(vec![Some("$.a"), Some("$.a"), Some("nope")]));
        assert!(run(json, ColumnarValue::Array(bad)).is_err(), "a bad path where there is JSON");
        let views: ArrayRef = Arc::new(StringViewArray::from(vec![Some(r#"{"a":"x"}"#), None]));
        let literal = ColumnarValue::Scalar(ScalarValue::Utf8(Some("$.a".into())));
        assert_eq!(run(views, literal).unwrap(), [Some("x".to_owned()), None]);
        let no_json: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>, None]));
        let bad_literal = ColumnarValue::Scalar(ScalarValue::Utf8(Some("nope".into())));
        assert!(run(no_json, bad_literal).is_err(), "a bad literal path, whatever the rows");
    }

    #[test]
    fn iso8601_forms_parse_to_utc_milliseconds() {
        let ms = |text: &str| parse_iso8601(text).map(|t| t.timestamp_millis());
        assert_eq!(ms("2024-03-17T15:34:56.789Z"), Some(1_710_689_696_789));
        assert_eq!(ms("2024-03-17T15:34:56Z"), Some(1_710_689_696_000));
        assert_eq!(ms("2024-03-17T17:34:56.789+02:00"), Some(1_710_689_696_789));
        assert_eq!(ms("2024-03-17T15:34:56.789"), Some(1_710_689_696_789));
        assert_eq!(ms("2024-03-17"), Some(1_710_633_600_000));
        assert_eq!(ms("17/03/2024"), None);
        // The lake's own form, read digit by digit, agrees with the general parser.
        for millis in (-62_135_596_800_000_i64..253_402_300_799_999).step_by(9_876_543_210_987) {
            let time = DateTime::<Utc>::from_timestamp_millis(millis).unwrap();
            let text = time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            assert_eq!(created_datetime_millis(&text), Some(millis), "{text}");
            assert_eq!(created_datetime_millis(&text), ms(&text), "{text}");
            let text = time.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            assert_eq!(created_datetime_millis(&text), Some(millis - millis.rem_euclid(1000)), "{text}");
            assert_eq!(created_datetime_millis(&text), ms(&text), "{text}");
        }
        for other in [
            "2024-03-17T15:34:56.7Z",
            "2024-03-17T15:34:56+00:00",
            "2024-02-30T00:00:00.000Z",
            "2024-03-17T15:34:60.000Z",
            "2024-03-17T15:34:5x.000Z",
            "2024-03-17 15:34:56.789Z",
        ] {
            assert_eq!(created_datetime_millis(other), None, "{other}");
        }
    }

    #[test]
    fn date_format_uses_athena_specifiers() {
        let time = DateTime::<Utc>::from_timestamp_millis(1_710_689_696_789).unwrap();
        let format = |pattern| time.format(&chrono_pattern(pattern).unwrap()).to_string();
        assert_eq!(format("%Y-%m-%d %H:%i:%s"), "2024-03-17 15:34:56");
        assert_eq!(format("%Y-%m-%d %H:00"), "2024-03-17 15:00");
        assert_eq!(format("%M %e, %W %r %f %%"), "March 17, Sunday 03:34:56 PM 789000 %");
        assert_eq!(format("%c/%k/%l %j %T"), "3/15/3 077 15:34:56");
        assert!(chrono_pattern("%Q").is_err());
        assert!(chrono_pattern("50%").is_err());
    }
}
