//! `Time`: a batch time in milliseconds, and duration checks.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A point in stream time, in milliseconds (since the Unix epoch with the system clock, or since
/// the manual clock's origin). Displays as Spark does: `1000 ms`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Time(u64);

impl Time {
    /// The time `ms` milliseconds after the origin.
    pub const fn from_ms(ms: u64) -> Time {
        Time(ms)
    }

    /// Milliseconds since the origin.
    pub const fn ms(self) -> u64 {
        self.0
    }

    /// `self + d` (the last representable time if that is later).
    pub fn plus(self, d: Duration) -> Time {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(ms))
    }

    /// `self - d`, or the origin if that would be before it.
    pub fn minus(self, d: Duration) -> Time {
        Time(self.0.saturating_sub(d.as_millis() as u64))
    }

    /// The duration from `earlier` to `self` (zero if `earlier` is later).
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

/// The longest batch interval, window, slide or checkpoint interval accepted: ten years. Longer
/// ones are mistakes (a unit typed wrong), and bounding them keeps batch times far from
/// overflowing.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A duration in whole milliseconds, or an error naming `what`.
pub(crate) fn millis(d: Duration, what: &str) -> Result<u64> {
    if d.is_zero() {
        return Err(Error::InvalidDuration(format!("{what} must be positive")));
    }
    if d > MAX_DURATION {
        return Err(Error::InvalidDuration(format!(
            "{what} {d:?} is longer than ten years: check its unit"
        )));
    }
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(Error::InvalidDuration(format!(
            "{what} {d:?} is not a whole number of milliseconds"
        )));
    }
    Ok(d.as_millis() as u64)
}

/// Formats milliseconds as a short duration (`45s`, `1500ms`).
pub(crate) fn show(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Checks that `d` is a positive multiple of `unit` (both whole milliseconds); the error names
/// the nearest valid values.
pub(crate) fn check_multiple(
    d: Duration,
    unit: Duration,
    what: &str,
    unit_name: &str,
) -> Result<()> {
    let ms = millis(d, what)?;
    let unit_ms = millis(unit, unit_name)?;
    if ms % unit_ms != 0 {
        let lower = ms / unit_ms * unit_ms;
        let upper = lower + unit_ms;
        let fix = if lower == 0 {
            format!("use {}", show(upper))
        } else {
            format!("use {} or {}", show(lower), show(upper))
        };
        return Err(Error::InvalidDuration(format!(
            "{what} {} is not a multiple of the {unit_name} {}: {fix}",
            show(ms),
            show(unit_ms)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiples_and_messages() {
        let s = Duration::from_secs;
        assert!(check_multiple(s(40), s(10), "window", "batch interval").is_ok());
        let e = check_multiple(s(45), s(10), "window", "batch interval")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("window 45s is not a multiple of the batch interval 10s: use 40s or 50s"),
            "{e}"
        );
        let e = check_multiple(s(5), s(10), "slide", "batch interval")
            .unwrap_err()
            .to_string();
        assert!(e.contains("use 10s"), "{e}");
        assert!(check_multiple(Duration::ZERO, s(1), "window", "batch").is_err());
        assert!(millis(Duration::from_micros(1500), "batch").is_err());
        assert_eq!(Time::from_ms(1000).to_string(), "1000 ms");
        assert_eq!(Time::from_ms(500).minus(s(1)), Time::from_ms(0));
    }

    #[test]
    fn durations_past_ten_years_are_refused_and_times_do_not_wrap() {
        let e = millis(Duration::from_secs(11 * 365 * 24 * 3600), "window")
            .unwrap_err()
            .to_string();
        assert!(e.contains("window") && e.contains("ten years"), "{e}");
        assert!(millis(MAX_DURATION, "window").is_ok());
        assert!(millis(Duration::MAX, "batch").is_err());
        assert_eq!(
            Time::from_ms(5).plus(Duration::MAX),
            Time::from_ms(u64::MAX)
        );
        assert_eq!(
            Time::from_ms(u64::MAX - 1).plus(Duration::from_millis(7)),
            Time::from_ms(u64::MAX)
        );
        assert_eq!(
            Time::from_ms(1000).plus(Duration::from_millis(7)),
            Time::from_ms(1007)
        );
    }
}
