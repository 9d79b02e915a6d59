//! What a sweep costs, in DynamoDB capacity units: the model the README's table and the
//! bench's check use.
//!
//! - **Scan**: DynamoDB sums the sizes of the items a page *evaluates* (a filter does not
//!   make it cheaper) and rounds each page up to 4 KB; an eventually consistent read costs
//!   half a unit per 4 KB, and at least half a unit a page. A page ends at 1 MB, or at
//!   `SWEEP_PAGE_SIZE` items; each segment ends with a last page, empty when the one before
//!   it was full.
//! - **Deletes**: one write unit per deleted item per started 1 KB of it, once more for
//!   every global secondary index the item is in.
//! - **Checkpoint**: one consistent `GetItem` per run (1 read unit) and, when the run stops
//!   early or finishes a checkpointed slice, one `PutItem` or `DeleteItem` (1 write unit
//!   per started KB of the item, about 50 bytes a segment cursor).
//! - **Native TTL** deletes cost nothing.
//!
//! The sweeper reports what DynamoDB says it consumed (`read_units`, `write_units`);
//! these functions say what to expect before running it.

/// DynamoDB's largest Scan page, in bytes.
pub const PAGE_BYTES: u64 = 1024 * 1024;

/// Read units of one full scan, in `segments` parallel segments, of `items` items of
/// `item_bytes` bytes each (as DynamoDB counts an item: attribute names and values),
/// `page_items` per page at most (0 for 1 MB pages), eventually consistent.
pub fn scan_read_units(items: u64, item_bytes: u64, page_items: u64, segments: u64) -> f64 {
    let segments = segments.max(1);
    (0..segments)
        .map(|s| {
            let share = items / segments + u64::from(s < items % segments);
            segment_read_units(share, item_bytes, page_items)
        })
        .sum()
}

/// [`scan_read_units`] of one segment.
fn segment_read_units(items: u64, item_bytes: u64, page_items: u64) -> f64 {
    let item_bytes = item_bytes.max(1);
    let by_size = (PAGE_BYTES / item_bytes).max(1);
    let per_page = if page_items == 0 {
        by_size
    } else {
        page_items.min(by_size)
    };
    let page_units = |n: u64| 0.5 * (n * item_bytes).div_ceil(4096).max(1) as f64;
    // Full pages, then the last one: the rest, or nothing after a full page.
    (items / per_page) as f64 * page_units(per_page) + page_units(items % per_page)
}

/// Write units of deleting `deleted` items of `item_bytes` bytes, each also in `gsis`
/// global secondary indexes.
pub fn delete_write_units(deleted: u64, item_bytes: u64, gsis: u64) -> f64 {
    (deleted * item_bytes.max(1).div_ceil(1024) * (1 + gsis)) as f64
}

/// One run's checkpoint, read and write: (read units, write units) for a slice of
/// `segments` segments.
pub fn checkpoint_units(segments: u64) -> (f64, f64) {
    const CURSOR_BYTES: u64 = 50;
    (1.0, (100 + segments * CURSOR_BYTES).div_ceil(1024) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_is_half_a_unit_per_4_kb_rounded_up_per_page() {
        // 1,000 items of 160 bytes in one page: 160,000 bytes, 40 blocks, 20 units.
        assert_eq!(scan_read_units(1_000, 160, 0, 1), 20.0);
        // 100 items a page: ten pages of 16,000 bytes, 4 blocks each, 10 x 2 units, and
        // the empty last page after a full one, half a unit.
        assert_eq!(scan_read_units(1_000, 160, 100, 1), 20.5);
        // 30 items a page: 33 pages of 4,800 bytes (2 blocks) and one of 1,600 (1).
        assert_eq!(scan_read_units(1_000, 160, 30, 1), 33.0 + 0.5);
        // Two segments of 500: each ends with its own last page.
        assert_eq!(scan_read_units(1_000, 160, 100, 2), 2.0 * 10.5);
        // 1 MB pages: 10M sessions of 200 bytes read about 2 GB, 244k units.
        let ten_million = scan_read_units(10_000_000, 200, 0, 8);
        assert!(
            (244_000.0..245_000.0).contains(&ten_million),
            "{ten_million}"
        );
        assert_eq!(scan_read_units(0, 200, 0, 1), 0.5);
    }

    #[test]
    fn a_delete_is_a_unit_per_kb_per_index() {
        assert_eq!(delete_write_units(10, 200, 0), 10.0);
        assert_eq!(delete_write_units(10, 1025, 0), 20.0);
        assert_eq!(delete_write_units(10, 200, 2), 30.0);
        assert_eq!(checkpoint_units(8), (1.0, 1.0));
    }
}
