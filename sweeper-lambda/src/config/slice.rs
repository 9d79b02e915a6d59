//! Which segments one invocation sweeps: [`Slice`] (`START..END`), [`SlicePart`] (`I/N`),
//! and [`SliceSetting`], either one as written in `SWEEP_SLICE`.

/// A range of segments `start..end` out of the sweep's total, for one invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// First segment, inclusive.
    pub start: u32,
    /// Last segment, exclusive.
    pub end: u32,
}

impl Slice {
    /// Segments `start..end`.
    pub fn new(start: u32, end: u32) -> Self {
        Self { start, end }
    }

    /// The number of segments in the slice.
    pub fn len(&self) -> u32 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the slice holds no segment.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Part `index` of `count` equal parts of the segments, whatever their total: how a
/// deployment splits one table between several scheduled functions (`SWEEP_SLICE=1/2`)
/// without computing segment numbers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlicePart {
    /// Which part, from 0.
    pub index: u32,
    /// How many parts.
    pub count: u32,
}

impl SlicePart {
    /// Part `index` (from 0) of `count`.
    pub fn new(index: u32, count: u32) -> Self {
        Self { index, count }
    }

    /// The part's segments out of `total`: `index * total / count .. (index + 1) * total /
    /// count`, so the parts cover every segment once and differ in size by one at most.
    pub fn segments(&self, total: u32) -> Slice {
        let bound = |i: u32| {
            let b = u64::from(i) * u64::from(total) / u64::from(self.count.max(1));
            u32::try_from(b).unwrap_or(u32::MAX)
        };
        Slice::new(bound(self.index), bound(self.index.saturating_add(1)))
    }
}

/// A slice as written in `SWEEP_SLICE` or `--slice`: segments `START..END`, or part
/// `I/N` of the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceSetting {
    /// `START..END`.
    Segments(Slice),
    /// `I/N`.
    Part(SlicePart),
}

impl std::str::FromStr for SliceSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let number = |n: &str, what: &str| {
            n.trim()
                .parse::<u32>()
                .map_err(|e| format!("`{}` is not a {what} ({e})", n.trim()))
        };
        if let Some((a, b)) = text.split_once("..") {
            let (start, end) = (number(a, "segment number")?, number(b, "segment number")?);
            Ok(Self::Segments(Slice::new(start, end)))
        } else if let Some((i, n)) = text.split_once('/') {
            let (index, count) = (number(i, "part number")?, number(n, "number of parts")?);
            Ok(Self::Part(SlicePart::new(index, count)))
        } else {
            Err(format!(
                "`{}` is neither START..END (segments) nor I/N (part I of N, from 0)",
                text.trim()
            ))
        }
    }
}
