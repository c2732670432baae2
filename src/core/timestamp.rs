//! `created_at`: a JSON number of Unix seconds, read exactly from its decimal text.
//!
//! The number is never rounded through a float: `1710689696.0005` must round to
//! `.001`, and `1710689696.0` must count as a whole second, which binary floats get
//! wrong at this magnitude. The text is split into significant digits and a decimal
//! exponent, and milliseconds are computed from those digits.

use std::fmt;

use chrono::{DateTime, Utc};

/// First instant that is not allowed: 10000-01-01T00:00:00Z, in milliseconds.
pub const END_MILLIS: i64 = 253_402_300_800_000;
/// The same bound in seconds, as written in the contract.
pub const END_SECONDS: i64 = END_MILLIS / 1000;

/// An event's creation time, validated to lie in years 1970 to 9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventTime {
    millis: i64,
    whole_seconds: bool,
}

/// Why a `created_at` number is not a valid event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeError {
    /// The number is below zero.
    Negative,
    /// The number is at or past year 10000; `unit` guesses the unit the producer meant.
    OutOfRange { unit: Option<&'static str> },
}

impl EventTime {
    /// Reads the text of a JSON number (already validated by a JSON parser).
    pub fn from_json_number(text: &str) -> Result<Self, TimeError> {
        let number = Decimal::parse(text);
        if number.is_zero() {
            return Ok(EventTime { millis: 0, whole_seconds: true });
        }
        if number.negative {
            return Err(TimeError::Negative);
        }
        // Digits before the decimal point of the value in seconds; 13+ is past year 10000.
        let integer_digits = number.len as i64 + number.exponent;
        if integer_digits > 12 {
            return Err(out_of_range(text));
        }
        let millis = number.round_to_millis();
        if millis >= END_MILLIS {
            return Err(out_of_range(text));
        }
        Ok(EventTime { millis, whole_seconds: number.exponent >= 0 })
    }

    /// Builds a time from milliseconds, as stored in a dedupe key.
    pub fn from_millis(millis: i64) -> Option<Self> {
        Self::from_parts(millis, millis % 1000 != 0)
    }

    /// Rebuilds a time from [`millis`](Self::millis) and
    /// [`has_fraction`](Self::has_fraction), as the lake writer spills it.
    pub fn from_parts(millis: i64, has_fraction: bool) -> Option<Self> {
        let whole_seconds = !has_fraction;
        let consistent = !whole_seconds || millis % 1000 == 0;
        ((0..END_MILLIS).contains(&millis) && consistent).then_some(EventTime { millis, whole_seconds })
    }

    /// True when `created_at` had a fraction of a second (so the datetime shows
    /// milliseconds).
    pub fn has_fraction(self) -> bool {
        !self.whole_seconds
    }

    /// Unix time in whole milliseconds, rounded to nearest (halves up).
    pub fn millis(self) -> i64 {
        self.millis
    }

    /// Unix time in whole seconds of the millisecond-rounded time, floored.
    pub fn seconds(self) -> i64 {
        self.millis.div_euclid(1000)
    }

    fn datetime(self) -> DateTime<Utc> {
        // In range by construction: 0 <= millis < END_MILLIS.
        DateTime::from_timestamp_millis(self.millis).unwrap_or_default()
    }

    /// RFC 3339 in UTC: `2024-03-17T15:34:56Z`, or `…56.123Z` when the input had a
    /// fraction of a second.
    pub fn created_datetime(self) -> String {
        let mut out = Vec::with_capacity(24);
        self.write_created_datetime(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends [`created_datetime`](Self::created_datetime) to `out`, without allocating.
    pub fn write_created_datetime(self, out: &mut Vec<u8>) {
        use chrono::Timelike;
        let datetime = self.datetime();
        let (date, time) = (datetime.date_naive(), datetime.time());
        let mut text = *b"0000-00-00T00:00:00.000Z";
        text[..10].copy_from_slice(&CreatedDate(date).digits());
        put_digits(&mut text[11..13], time.hour());
        put_digits(&mut text[14..16], time.minute());
        put_digits(&mut text[17..19], time.second());
        if self.whole_seconds {
            out.extend_from_slice(&text[..19]);
            out.push(b'Z');
        } else {
            put_digits(&mut text[20..23], (self.millis % 1000) as u32);
            out.extend_from_slice(&text);
        }
    }

    /// Reads back what [`created_datetime`](Self::created_datetime) writes
    /// (`2024-03-17T15:34:56Z` or `…56.123Z`), as the lake stores it; anything
    /// else is `None`.
    pub fn parse_created_datetime(text: &str) -> Option<Self> {
        Self::from_parts(created_datetime_millis(text)?, text.len() == 24)
    }

    /// The UTC date, `YYYY-MM-DD`: the `created_date` partition value.
    pub fn created_date(self) -> CreatedDate {
        CreatedDate(self.datetime().date_naive())
    }
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ` or
/// `YYYY-MM-DDTHH:MM:SS.sssZ`, the two forms of `created_datetime`, read digit by
/// digit (any year; [`EventTime::parse_created_datetime`] bounds it); `None` for
/// any other text, a leap second included.
pub fn created_datetime_millis(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let millis_digits = match bytes.len() {
        20 => false,
        24 => true,
        _ => return None,
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    let end = if millis_digits { [(19, b'.'), (23, b'Z')].as_slice() } else { [(19, b'Z')].as_slice() };
    if !separators.iter().chain(end).all(|&(at, separator)| bytes[at] == separator) {
        return None;
    }
    let number = |from: usize, to: usize| {
        bytes[from..to]
            .iter()
            .try_fold(0_u32, |n, &digit| digit.is_ascii_digit().then(|| n * 10 + u32::from(digit - b'0')))
    };
    let millis = if millis_digits { number(20, 23)? } else { 0 };
    let date = chrono::NaiveDate::from_ymd_opt(number(0, 4)? as i32, number(5, 7)?, number(8, 10)?)?;
    let time = date.and_hms_milli_opt(number(11, 13)?, number(14, 16)?, number(17, 19)?, millis)?;
    Some(time.and_utc().timestamp_millis())
}

/// A UTC calendar date that formats as `YYYY-MM-DD` (years 1970 to 9999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CreatedDate(chrono::NaiveDate);

impl CreatedDate {
    /// Parses a partition value: exactly `YYYY-MM-DD`, years 1970 to 9999.
    pub fn parse(text: &str) -> Option<Self> {
        use chrono::Datelike;
        let shape_ok = text.len() == 10
            && text
                .bytes()
                .enumerate()
                .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().filter(|_| shape_ok)?;
        (1970..=9999).contains(&date.year()).then_some(CreatedDate(date))
    }

    /// The date `days` days before this one (this one for 0), no earlier than
    /// 1970-01-01.
    pub fn days_before(self, days: u32) -> Self {
        let earliest = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(self.0);
        CreatedDate(self.0.checked_sub_days(chrono::Days::new(days.into())).unwrap_or(earliest).max(earliest))
    }

    /// Appends `YYYY-MM-DD` to `out`, without allocating.
    pub fn write(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.digits());
    }

    fn digits(self) -> [u8; 10] {
        use chrono::Datelike;
        let mut text = *b"0000-00-00";
        put_digits(&mut text[0..4], self.0.year() as u32);
        put_digits(&mut text[5..7], self.0.month());
        put_digits(&mut text[8..10], self.0.day());
        text
    }
}

impl fmt::Display for CreatedDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.digits()).unwrap_or_default())
    }
}

/// Writes `value` as zero-padded decimal digits filling `slot`.
fn put_digits(slot: &mut [u8], mut value: u32) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn out_of_range(text: &str) -> TimeError {
    // A float is good enough to guess the unit the producer used; only guess when the
    // converted value is a recent time (after 2000-01-01), where a guess is credible.
    const Y2000: f64 = 946_684_800.0;
    let value: f64 = text.parse().unwrap_or(f64::INFINITY);
    let unit = [("milliseconds", 1e3), ("microseconds", 1e6), ("nanoseconds", 1e9)]
        .into_iter()
        .find(|(_, per_second)| (Y2000..END_SECONDS as f64).contains(&(value / per_second)))
        .map(|(unit, _)| unit);
    TimeError::OutOfRange { unit }
}

/// A decimal number as significant digits times a power of ten, trailing zeros
/// folded into the exponent: `1710689696.120` is digits `171068969612`, exponent -2.
///
/// Only the first 16 significant digits are kept: an accepted time has at most 12
/// integer digits, 3 millisecond digits and 1 digit that decides rounding.
struct Decimal {
    negative: bool,
    head: [u8; 16],
    /// Count of significant digits (without leading or trailing zeros); 0 for zero.
    len: usize,
    exponent: i64,
}

impl Decimal {
    fn parse(text: &str) -> Self {
        let (negative, text) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match text.find(['e', 'E']) {
            Some(at) => (&text[..at], parse_exponent(&text[at + 1..])),
            None => (text, 0),
        };
        let fraction_len = mantissa.split_once('.').map_or(0, |(_, fraction)| fraction.len());
        let digits = || mantissa.bytes().filter(|&b| b != b'.');
        let total = digits().count();
        let leading = digits().take_while(|&d| d == b'0').count();
        let trailing = if leading == total { 0 } else { digits().rev().take_while(|&d| d == b'0').count() };
        let len = total - leading - trailing;
        let mut head = [b'0'; 16];
        for (slot, digit) in head.iter_mut().zip(digits().skip(leading).take(len)) {
            *slot = digit;
        }
        let exponent = exponent.saturating_sub(fraction_len as i64).saturating_add(trailing as i64);
        Decimal { negative, head, len, exponent }
    }

    fn is_zero(&self) -> bool {
        self.len == 0
    }

    /// Rounds the value times 1000 to the nearest integer, halves up. The caller has
    /// checked that the value has at most 12 integer digits, so the result fits.
    fn round_to_millis(&self) -> i64 {
        let shift = self.exponent + 3;
        if shift >= 0 {
            return digits_value(&self.head[..self.len]) * 10_i64.pow(shift as u32);
        }
        let keep = self.len as i64 + shift;
        if keep < 0 {
            return 0;
        }
        let keep = keep as usize;
        let round_up = keep < self.len && self.head[keep] >= b'5';
        digits_value(&self.head[..keep]) + i64::from(round_up)
    }
}

fn parse_exponent(text: &str) -> i64 {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    // Saturate: an exponent past a few thousand already decides the range check.
    let magnitude = digits
        .bytes()
        .fold(0_i64, |acc, d| acc.saturating_mul(10).saturating_add(i64::from(d - b'0')))
        .min(1 << 40);
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

fn digits_value(digits: &[u8]) -> i64 {
    digits.iter().fold(0, |acc, &d| acc * 10 + i64::from(d - b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_before_counts_back_over_months_and_stops_at_1970() {
        let date = CreatedDate::parse("2024-03-02").unwrap();
        assert_eq!(date.days_before(0), date);
        assert_eq!(date.days_before(2).to_string(), "2024-02-29");
        assert_eq!(CreatedDate::parse("1970-01-02").unwrap().days_before(5).to_string(), "1970-01-01");
    }

    fn time(text: &str) -> EventTime {
        EventTime::from_json_number(text).unwrap()
    }

    #[test]
    fn whole_seconds_format_without_fraction() {
        for text in ["1710689696", "1710689696.0", "1710689696.000", "1.710689696e9", "17106896960E-1"] {
            let t = time(text);
            assert_eq!(t.created_datetime(), "2024-03-17T15:34:56Z", "{text}");
            assert_eq!(t.seconds(), 1_710_689_696);
        }
    }

    #[test]
    fn fractions_round_to_nearest_millisecond_halves_up() {
        assert_eq!(time("1710689696.123").created_datetime(), "2024-03-17T15:34:56.123Z");
        assert_eq!(time("1710689696.1234").millis(), 1_710_689_696_123);
        assert_eq!(time("1710689696.1235").millis(), 1_710_689_696_124);
        assert_eq!(time("1710689696.0005").millis(), 1_710_689_696_001);
        assert_eq!(time("1710689696.00049999999999999999").millis(), 1_710_689_696_000);
        assert_eq!(time("1.7106896961235e9").millis(), 1_710_689_696_124);
    }

    #[test]
    fn a_fraction_that_rounds_to_a_whole_second_still_shows_milliseconds() {
        let t = time("1710689696.9999");
        assert_eq!(t.created_datetime(), "2024-03-17T15:34:57.000Z");
        assert_eq!(t.seconds(), 1_710_689_697);
        assert_eq!(time("1710689696.0001").created_datetime(), "2024-03-17T15:34:56.000Z");
    }

    #[test]
    fn seconds_floor_the_rounded_millisecond_time() {
        assert_eq!(time("1710689696.4").seconds(), 1_710_689_696);
        assert_eq!(time("1710689696.9994").seconds(), 1_710_689_696);
    }

    #[test]
    fn zero_and_negative_zero_are_the_epoch() {
        for text in ["0", "-0", "0.0", "-0.0e5", "0e-7"] {
            assert_eq!(time(text).created_datetime(), "1970-01-01T00:00:00Z", "{text}");
        }
        assert_eq!(time("0.0004").created_datetime(), "1970-01-01T00:00:00.000Z");
        assert_eq!(time("1e-30").millis(), 0);
    }

    #[test]
    fn negative_values_are_rejected() {
        assert_eq!(EventTime::from_json_number("-1"), Err(TimeError::Negative));
        assert_eq!(EventTime::from_json_number("-0.001"), Err(TimeError::Negative));
    }

    #[test]
    fn the_last_millisecond_before_year_10000_is_accepted() {
        let t = time("253402300799.999");
        assert_eq!(t.created_datetime(), "9999-12-31T23:59:59.999Z");
        assert_eq!(t.created_date().to_string(), "9999-12-31");
        assert_eq!(time("253402300799").created_datetime(), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn year_10000_and_later_is_out_of_range_with_a_unit_guess() {
        let err = |text| EventTime::from_json_number(text).unwrap_err();
        assert_eq!(err("253402300800"), TimeError::OutOfRange { unit: None });
        assert_eq!(err("253402300799.9995"), TimeError::OutOfRange { unit: None });
        assert_eq!(err("1710689696123"), TimeError::OutOfRange { unit: Some("milliseconds") });
        assert_eq!(err("1710689696123456"), TimeError::OutOfRange { unit: Some("microseconds") });
        assert_eq!(err("1710689696123456789"), TimeError::OutOfRange { unit: Some("nanoseconds") });
        assert_eq!(err("1e400"), TimeError::OutOfRange { unit: None });
        assert_eq!(err("1e99999999999999999999"), TimeError::OutOfRange { unit: None });
    }

    #[test]
    fn many_digits_keep_exact_rounding() {
        let t = time("1710689696.12350000000000000000000000000000000000000000001");
        assert_eq!(t.millis(), 1_710_689_696_124);
        assert_eq!(time("0.00000000000000000000000000000000000000001e40").millis(), 100);
    }

    #[test]
    fn created_date_is_the_utc_day() {
        assert_eq!(time("1710719999").created_date().to_string(), "2024-03-17");
        assert_eq!(time("1710720000").created_date().to_string(), "2024-03-18");
    }

    #[test]
    fn created_date_writes_what_it_displays_and_parses_back() {
        for text in ["1970-01-01", "2024-02-29", "9999-12-31"] {
            let date = CreatedDate::parse(text).unwrap();
            let mut written = b"key=".to_vec();
            date.write(&mut written);
            assert_eq!(
                (date.to_string().as_str(), written.as_slice()),
                (text, format!("key={text}").as_bytes())
            );
        }
    }

    #[test]
    fn from_millis_round_trips() {
        let t = time("1710689696.5");
        assert_eq!(EventTime::from_millis(t.millis()).unwrap().millis(), t.millis());
        assert!(EventTime::from_millis(END_MILLIS).is_none());
        assert!(EventTime::from_millis(-1).is_none());
    }

    #[test]
    fn created_datetime_reads_back_what_it_writes_and_nothing_else() {
        for (millis, fraction) in
            [(0, false), (1_710_689_696_000, false), (1_710_689_696_120, true), (1_710_689_696_000, true)]
        {
            let time = EventTime::from_parts(millis, fraction).unwrap();
            assert_eq!(EventTime::parse_created_datetime(&time.created_datetime()), Some(time));
        }
        for text in [
            "2024-03-17T15:34:56",
            "2024-03-17T15:34:56.12Z",
            "2024-03-17T15:34:56+00:00",
            "2024-03-17 15:34:56Z",
            "",
        ] {
            assert_eq!(EventTime::parse_created_datetime(text), None, "{text}");
        }
    }
}
