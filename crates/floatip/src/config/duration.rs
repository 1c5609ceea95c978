//! Durations as a config author writes them ("250ms", "1.5s", "1m30s"): the parser, and THE formatter
//! every message and log line uses to show one back.

use std::time::Duration;

/// Parses a human duration: a number with a unit (`ms`, `s`, `m`, `h`; also `us`), decimals allowed, parts
/// may be combined ("1m30s"). Bare numbers are refused because "1" could mean seconds or milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let input = s.trim();
    if input.is_empty() {
        return Err("an empty duration; write it with a unit, e.g. \"1s\" or \"250ms\"".into());
    }
    if input.parse::<f64>().is_ok() {
        return Err(format!(
            "\"{input}\" has no unit; write \"{input}s\" for seconds or \"{input}ms\" for milliseconds"
        ));
    }
    let mut total: u128 = 0;
    let mut rest = input;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        if number.is_empty() {
            return Err(format!(
                "\"{input}\" is not a duration; write a number and a unit, e.g. \"1s\", \"250ms\", \"1.5s\", \"2m\""
            ));
        }
        let unit_nanos: u128 = match unit {
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" | "min" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => {
                return Err(format!(
                    "\"{input}\": {number} has no unit; add one of ms, s, m, h (e.g. \"{number}s\")"
                ))
            }
            other => {
                return Err(format!(
                "\"{input}\": unknown unit \"{other}\"; use ms, s, m or h (e.g. \"250ms\", \"1s\")"
            ))
            }
        };
        let (whole, frac) = match number.split_once('.') {
            Some((w, f)) => (w, f),
            None => (number, ""),
        };
        if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(format!("\"{input}\": \"{number}\" is not a number"));
        }
        let too_long = || format!("\"{input}\" is far too long for a duration");
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| too_long())?
        };
        let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(too_long)?;
        if !frac.is_empty() {
            if frac.len() > 9 {
                return Err(format!("\"{input}\" is more precise than a nanosecond"));
            }
            let frac_value: u128 = frac.parse().map_err(|_| too_long())?;
            let scaled = frac_value * unit_nanos;
            let divisor = 10u128.pow(frac.len() as u32);
            if scaled % divisor != 0 {
                return Err(format!("\"{input}\" is more precise than a nanosecond"));
            }
            nanos += scaled / divisor;
        }
        total = total.checked_add(nanos).ok_or_else(too_long)?;
    }
    let secs =
        u64::try_from(total / 1_000_000_000).map_err(|_| format!("\"{input}\" is too long"))?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Shows a duration the way a user would write it in the file ("1s", "250ms", "1.5s").
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        "0s".into()
    } else if nanos % 3_600_000_000_000 == 0 {
        format!("{}h", nanos / 3_600_000_000_000)
    } else if nanos % 60_000_000_000 == 0 {
        format!("{}m", nanos / 60_000_000_000)
    } else if nanos % 1_000_000_000 == 0 {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos >= 1_000_000_000 && nanos % 1_000_000 == 0 {
        let s = format!("{:.3}", d.as_secs_f64());
        format!("{}s", s.trim_end_matches('0'))
    } else if nanos % 1_000_000 == 0 {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one formatter also writes the durations people read in logs and `floatip status`.
    #[test]
    fn people_read_short_durations() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(10)), "10ms");
        assert_eq!(format_duration(Duration::from_secs(1)), "1s");
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
    }
}
