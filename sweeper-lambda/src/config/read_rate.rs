//! [`ReadRate`]: the scan's read-units-per-second cap, fixed or sized from the table.

use std::fmt;

/// The share of a provisioned table's read capacity that [`ReadRate::Auto`] gives the
/// sweep (all slices together): a fifth, so the application keeps four fifths of what it
/// pays for, and a sweep's burst of 1 MB pages (128 units each, eventually consistent)
/// cannot starve it. DynamoDB's burst capacity (up to 300 s of unused capacity) absorbs
/// the sweep's own unevenness.
pub const AUTO_SHARE_PERCENT: u64 = 20;

/// How many read capacity units per second the scan may consume, across its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadRate {
    /// This many units a second; 0 for no cap.
    PerSecond(u32),
    /// Sized from the table at the start of each run: on an on-demand table no cap; on a
    /// provisioned one [`AUTO_SHARE_PERCENT`] of its provisioned read capacity, times the
    /// slice's share of the segments (so the slices together take that share), and at
    /// least 1.
    Auto,
}

impl Default for ReadRate {
    fn default() -> Self {
        Self::PerSecond(0)
    }
}

impl ReadRate {
    /// The cap in units per second (0 for none) for a table with `provisioned` read
    /// capacity (`None` on demand), for a slice of `slice_segments` of `total_segments`.
    pub fn resolve(
        self,
        provisioned: Option<u64>,
        slice_segments: u32,
        total_segments: u32,
    ) -> u32 {
        match (self, provisioned) {
            (Self::PerSecond(cap), _) => cap,
            (Self::Auto, None) => 0,
            (Self::Auto, Some(units)) => {
                let share =
                    u128::from(units) * u128::from(AUTO_SHARE_PERCENT) * u128::from(slice_segments)
                        / (100 * u128::from(total_segments.max(1)));
                u32::try_from(share).unwrap_or(u32::MAX).max(1)
            }
        }
    }
}

impl std::str::FromStr for ReadRate {
    type Err = String;

    /// Parses `auto` (any case) or a whole number of units per second.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        text.parse::<u32>().map(Self::PerSecond).map_err(|_| {
            format!("`{text}` is not `auto` or a whole number of read units per second")
        })
    }
}

impl fmt::Display for ReadRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PerSecond(cap) => write!(f, "{cap}"),
            Self::Auto => f.write_str("auto"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_a_fifth_of_provisioned_capacity_split_by_slice() {
        assert_eq!(ReadRate::Auto.resolve(None, 8, 8), 0, "on demand: no cap");
        assert_eq!(ReadRate::Auto.resolve(Some(1_000), 8, 8), 200);
        assert_eq!(ReadRate::Auto.resolve(Some(1_000), 2, 8), 50);
        assert_eq!(ReadRate::Auto.resolve(Some(5), 8, 8), 1, "never below 1");
        assert_eq!(ReadRate::Auto.resolve(Some(u64::MAX), 8, 8), u32::MAX);
        assert_eq!(ReadRate::PerSecond(7).resolve(Some(1_000), 8, 8), 7);
        assert_eq!(ReadRate::PerSecond(0).resolve(Some(1_000), 8, 8), 0);
    }

    #[test]
    fn parses_auto_or_a_number() {
        assert_eq!("auto".parse(), Ok(ReadRate::Auto));
        assert_eq!(" AUTO ".parse(), Ok(ReadRate::Auto));
        assert_eq!("40".parse(), Ok(ReadRate::PerSecond(40)));
        let err = "1.5".parse::<ReadRate>().unwrap_err();
        assert!(err.contains("`1.5`") && err.contains("auto"), "{err}");
        assert_eq!(ReadRate::Auto.to_string(), "auto");
    }
}
