// Reads values from outside the process: arithmetic is checked (issue 12), or allowed where it
// stands with its reason.
#![warn(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
//! One duration grammar for every duration that comes from outside the process: config files,
//! flags, query strings (`?wait=`), JSON bodies (`"TTL"`, `"Liveness"`), the runtime config API.
//!
//! The grammar is Go's, as Consul writes and reads durations: one or more decimal numbers,
//! each with a unit (`ns`, `us` or `µs`, `ms`, `s`, `m`, `h`), as in `"1m30s"`, `"250ms"`,
//! `"1.5h"`. A bare number is seconds (the seed API's and hera's own habit). No sign, no
//! exponent, no `inf` or `NaN`. Parsing is integer arithmetic on nanoseconds, checked at every
//! step, so no text can panic the parser or wrap into a small value: anything longer than
//! [`PARSE_MAX`] is refused. Each field then checks its own [`Bounds`], and a value outside
//! them is refused with the field, the value and the range, never rounded into range.

use std::fmt;
use std::time::Duration;

/// The longest duration the grammar reads: 100 years. Longer than any interval, TTL or wait
/// means anything, and far inside what `Duration` and `Instant` arithmetic can hold.
pub const PARSE_MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3_600);

/// Longest text read as a duration; a longer one is refused before it is scanned.
const TEXT_BYTES_MAX: usize = 64;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// Nothing to read.
    Empty,
    /// Not the grammar: a sign, an exponent, a stray character, a number without digits.
    Malformed { text: String },
    /// A unit the grammar does not know.
    UnknownUnit { text: String, unit: String },
    /// Longer than [`PARSE_MAX`] (or than the text limit).
    TooLong { text: String },
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => write!(f, "a duration is needed, like 10s, 1m30s or 250ms"),
            DurationError::Malformed { text } => {
                write!(f, "{text:?} is not a duration like 10s, 1m30s or 250ms")
            }
            DurationError::UnknownUnit { text, unit } => write!(
                f,
                "{text:?} has the unknown unit {unit:?} (use ns, us, ms, s, m or h)"
            ),
            DurationError::TooLong { text } => {
                write!(
                    f,
                    "{text:?} is longer than the 100 years any duration may be"
                )
            }
        }
    }
}

impl std::error::Error for DurationError {}

/// Parse a duration in the grammar above.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let shown = || text.chars().take(TEXT_BYTES_MAX).collect::<String>();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.len() > TEXT_BYTES_MAX {
        return Err(DurationError::TooLong { text: shown() });
    }
    let malformed = || DurationError::Malformed { text: shown() };
    let too_long = || DurationError::TooLong { text: shown() };

    let mut total: u64 = 0;
    let mut rest = text;
    let mut bare_number = true;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u64 = match unit {
            // A bare number is seconds, and only when it is the whole text.
            "" if bare_number && after.is_empty() => 1_000_000_000,
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(malformed()),
            other
                if other
                    .chars()
                    .all(|c| c.is_ascii_alphabetic() || !c.is_ascii()) =>
            {
                return Err(DurationError::UnknownUnit {
                    text: shown(),
                    unit: other.to_string(),
                })
            }
            _ => return Err(malformed()),
        };
        let nanos = term_nanos(number, unit_nanos).ok_or_else(|| {
            if number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                && number.bytes().filter(|&b| b == b'.').count() <= 1
                && number.bytes().any(|b| b.is_ascii_digit())
            {
                too_long()
            } else {
                malformed()
            }
        })?;
        total = total.checked_add(nanos).ok_or_else(too_long)?;
        bare_number = false;
        rest = after;
    }
    let parsed = Duration::from_nanos(total);
    if parsed > PARSE_MAX {
        return Err(too_long());
    }
    Ok(parsed)
}

/// `number` (digits with at most one `.`) times `unit_nanos`, or `None` when it is not such a
/// number or does not fit in `u64` nanoseconds.
fn term_nanos(number: &str, unit_nanos: u64) -> Option<u64> {
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut whole_value: u64 = 0;
    for digit in whole.bytes() {
        whole_value = whole_value
            .checked_mul(10)?
            .checked_add(u64::from(digit.checked_sub(b'0')?))?;
    }
    let mut nanos = whole_value.checked_mul(unit_nanos)?;
    // Only the fraction's first 18 digits can matter: a unit is at most 3.6e12 ns, so the
    // 19th digit is worth less than a nanosecond. Past that, truncate.
    let mut fraction_value: u128 = 0;
    let mut scale: u128 = 1;
    for digit in fraction.bytes().take(18) {
        fraction_value = fraction_value
            .checked_mul(10)?
            .checked_add(u128::from(digit.checked_sub(b'0')?))?;
        scale = scale.checked_mul(10)?;
    }
    let fraction_nanos = fraction_value
        .checked_mul(u128::from(unit_nanos))?
        .checked_div(scale)?;
    let fraction_nanos = u64::try_from(fraction_nanos).ok()?;
    nanos = nanos.checked_add(fraction_nanos)?;
    Some(nanos)
}

/// A duration in the shortest Go form that [`parse`] reads back to the same value:
/// `"2s"`, `"1m30s"`, `"250ms"`, `"1.5ms"`.
// Divisions and remainders by the non-zero unit sizes below, of a value a `Duration` holds.
#[allow(clippy::arithmetic_side_effects)]
pub fn display(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    const UNITS: [(u128, &str); 6] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    // Whole hours, minutes and seconds as Go writes them; below a second, one unit.
    if nanos % 1_000_000_000 == 0 {
        let mut out = String::new();
        let mut rest = nanos;
        for (size, unit) in &UNITS[..3] {
            if rest >= *size {
                out.push_str(&format!("{}{unit}", rest / size));
                rest %= size;
            }
        }
        return out;
    }
    for (size, unit) in &UNITS[2..] {
        if nanos % size == 0 || *size == 1 {
            return format!("{}{unit}", nanos / size);
        }
        if nanos >= *size {
            // Not whole in this unit: write it with a decimal fraction of it.
            let whole = nanos / size;
            let fraction = format!("{:0width$}", nanos % size, width = digits(*size) - 1);
            return format!("{whole}.{}{unit}", fraction.trim_end_matches('0'));
        }
    }
    format!("{nanos}ns")
}

// At most 39 digits in a u128: neither the count nor the division can overflow.
#[allow(clippy::arithmetic_side_effects)]
fn digits(mut n: u128) -> usize {
    let mut count = 0;
    while n > 0 {
        count += 1;
        n /= 10;
    }
    count
}

/// The range a field's duration must fall in, both ends allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: Duration,
    pub max: Duration,
}

impl Bounds {
    pub const fn new(min: Duration, max: Duration) -> Bounds {
        Bounds { min, max }
    }

    pub fn contains(&self, value: Duration) -> bool {
        (self.min..=self.max).contains(&value)
    }

    /// `value` if it is in range, else an error naming `field`, the value and the range.
    pub fn check(&self, field: &str, value: Duration) -> Result<Duration, OutOfRange> {
        if self.contains(value) {
            Ok(value)
        } else {
            Err(OutOfRange {
                field: field.to_string(),
                value,
                bounds: *self,
            })
        }
    }

    /// Parse `text` and check it: the one path from outside text to a field's duration.
    pub fn parse(&self, field: &str, text: &str) -> Result<Duration, FieldError> {
        let value = parse(text).map_err(|error| FieldError::Unreadable {
            field: field.to_string(),
            error,
        })?;
        self.check(field, value).map_err(FieldError::OutOfRange)
    }
}

/// A duration outside its field's range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfRange {
    pub field: String,
    pub value: Duration,
    pub bounds: Bounds,
}

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} is outside the allowed range {} to {}",
            self.field,
            display(self.value),
            display(self.bounds.min),
            display(self.bounds.max)
        )
    }
}

impl std::error::Error for OutOfRange {}

/// Why a field's duration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    Unreadable { field: String, error: DurationError },
    OutOfRange(OutOfRange),
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::Unreadable { field, error } => write!(f, "{field}: {error}"),
            FieldError::OutOfRange(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for FieldError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_go_and_bare_forms() {
        let table: [(&str, u64); 14] = [
            ("10s", 10_000_000_000),
            ("1m30s", 90_000_000_000),
            ("250ms", 250_000_000),
            ("2h", 7_200_000_000_000),
            ("5", 5_000_000_000),
            ("0.5", 500_000_000),
            ("1.5h", 5_400_000_000_000),
            ("1ns", 1),
            ("3us", 3_000),
            ("3µs", 3_000),
            (".5s", 500_000_000),
            ("2.s", 2_000_000_000),
            ("0", 0),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
        ];
        for (text, nanos) in table {
            assert_eq!(parse(text), Ok(Duration::from_nanos(nanos)), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_the_grammar() {
        for bad in [
            "", " ", "s", "10x", "-1s", "+1s", "1.2.3s", "1e20", "2e19", "inf", "NaN", "1s5",
            "1 s", ".s", "1..s", "0x10s", "1sms",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed as {:?}", parse(bad));
        }
    }

    #[test]
    fn huge_values_are_refused_never_wrapped() {
        for huge in [
            "18446744073709552",
            "18446744073709552000ms",
            "100000000000000000000",
            "999999999999h",
            "36500000000h",
            "5124096h5124096h",
        ] {
            assert!(
                matches!(parse(huge), Err(DurationError::TooLong { .. })),
                "{huge}: {:?}",
                parse(huge)
            );
        }
        // The longest allowed value parses exactly.
        assert_eq!(parse("876000h"), Ok(PARSE_MAX));
        assert!(parse("876000h1ns").is_err());
    }

    #[test]
    fn display_reads_back() {
        for nanos in [
            0,
            1,
            999,
            1_000,
            1_500_000,
            250_000_000,
            1_000_000_000,
            90_000_000_000,
            3_723_000_000_000,
            3_723_004_005_006,
        ] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(parse(&display(d)), Ok(d), "{}", display(d));
        }
        assert_eq!(display(Duration::from_millis(400)), "400ms");
        assert_eq!(display(Duration::from_secs(90)), "1m30s");
        assert_eq!(display(Duration::from_micros(1_500)), "1.5ms");
    }

    #[test]
    fn bounds_name_the_field_the_value_and_the_range() {
        let b = Bounds::new(Duration::from_millis(1), Duration::from_secs(60));
        assert_eq!(b.parse("ttl", "2s"), Ok(Duration::from_secs(2)));
        let e = b.parse("ttl", "1ns").unwrap_err().to_string();
        assert_eq!(e, "ttl: 1ns is outside the allowed range 1ms to 1m");
        let e = b.parse("ttl", "1e20").unwrap_err().to_string();
        assert!(
            e.starts_with("ttl: \"1e20\" has the unknown unit \"e\""),
            "{e}"
        );
    }
}
