//! Go-style durations (`10s`, `1m30s`, `500ms`): the API server's `?timeout=`
//! query parameter is written this way, and the command line uses the same form.
//!
//! Kept by hand on purpose (issue 16 asked for a crate where one does the
//! job): `humantime` rejects Go's fractions (`1.5s`, which Go's
//! `Duration.String` writes) and accepts forms Go does not (`10 sec`, `2d`);
//! `go-parse-duration` (a 0.1 port of Go's parser) returns signed
//! nanoseconds and accepts `-1s` and `+1s`, which are refused here.

use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid duration {0:?}: expected a number with a unit (ns, us, ms, s, m, h), like 10s or 1m30s")]
pub struct DurationError(pub String);

/// Parse a non-negative Go duration. `0` alone is accepted, as in Go.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(text.chars().take(64).collect());
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err());
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(err)?;
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number.parse().map_err(|_| err())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += value * seconds;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        for bad in ["", "10", "s", "-1s", "10x", "1e3s", "1..5s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
