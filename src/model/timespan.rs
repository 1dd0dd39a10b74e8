//! Exchange timespans, written `[d.]hh:mm:ss` (`00:05:00`, `2.00:00:00`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timespan(Duration);

impl Timespan {
    pub const fn from_secs(s: u64) -> Self {
        Timespan(Duration::from_secs(s))
    }
    pub const fn from_mins(m: u64) -> Self {
        Timespan(Duration::from_secs(m * 60))
    }
    pub const fn from_hours(h: u64) -> Self {
        Timespan(Duration::from_secs(h * 3600))
    }
    pub const fn from_days(d: u64) -> Self {
        Timespan(Duration::from_secs(d * 86400))
    }
    pub fn duration(&self) -> Duration {
        self.0
    }
    pub fn as_secs(&self) -> u64 {
        self.0.as_secs()
    }
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl FromStr for Timespan {
    type Err = String;
    fn from_str(input: &str) -> Result<Self, String> {
        let bad = || {
            format!("'{input}' is not a timespan: write [d.]hh:mm:ss, e.g. 00:05:00 or 2.00:00:00")
        };
        let (days, hms) = match input.split_once('.') {
            Some((d, rest)) if rest.contains(':') && !d.contains(':') => {
                (d.parse::<u64>().map_err(|_| bad())?, rest)
            }
            _ => (0, input),
        };
        let parts: Vec<&str> = hms.split(':').collect();
        if parts.len() != 3 {
            return Err(bad());
        }
        let h: u64 = parts[0].parse().map_err(|_| bad())?;
        let m: u64 = parts[1].parse().map_err(|_| bad())?;
        let (sec, frac) = match parts[2].split_once('.') {
            Some((s, f)) => (s, Some(f)),
            None => (parts[2], None),
        };
        let s: u64 = sec.parse().map_err(|_| bad())?;
        if h > 23 || m > 59 || s > 59 {
            return Err(bad());
        }
        let millis = match frac {
            Some(f) if !f.is_empty() && f.len() <= 7 && f.bytes().all(|b| b.is_ascii_digit()) => {
                format!("{f:0<3}")[..3].parse::<u64>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
            None => 0,
        };
        let secs = days
            .checked_mul(86400)
            .and_then(|d| d.checked_add(h * 3600 + m * 60 + s))
            .ok_or_else(bad)?;
        Ok(Timespan(
            Duration::from_secs(secs) + Duration::from_millis(millis),
        ))
    }
}

impl fmt::Display for Timespan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_secs();
        let (d, rem) = (total / 86400, total % 86400);
        if d > 0 {
            write!(f, "{d}.")?;
        }
        write!(
            f,
            "{:02}:{:02}:{:02}",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )?;
        let ms = self.0.subsec_millis();
        if ms > 0 {
            write!(f, ".{ms:03}")?;
        }
        Ok(())
    }
}

string_type!(
    Timespan,
    "A timespan `[d.]hh:mm:ss[.fff]`, as Exchange writes it: `00:05:00` is five minutes, `2.00:00:00` two days.",
    "00:05:00",
    Some(super::schema::timespan_any_pattern()),
    None
);

/// Checks that a timespan lies within `[min, max]`, naming the bounds the way
/// an admin writes them.
pub fn check_range(
    errors: &mut super::error::Errors,
    field: &str,
    v: Timespan,
    min: Timespan,
    max: Timespan,
) {
    if v < min || v > max {
        errors.add(field, format!("must be between {min} and {max} (got {v})"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            "00:05:00",
            "2.00:00:00",
            "12:00:00",
            "00:00:01",
            "00:00:00.500",
        ] {
            assert_eq!(s.parse::<Timespan>().unwrap().to_string(), s);
        }
        assert_eq!(
            "1.02:03:04".parse::<Timespan>().unwrap().as_secs(),
            86400 + 7384
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "5",
            "00:60:00",
            "24:00:00",
            "a.00:00:00",
            "00:00",
            "",
            "00:00:00.x",
        ] {
            assert!(bad.parse::<Timespan>().is_err(), "{bad}");
        }
    }
}
