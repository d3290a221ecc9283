//! Log-linear histogram layout, shared so the kernel side and user space
//! agree on bucket bounds by construction.
//!
//! Values below 16 get one bucket each (exact). Above, each power of two
//! [2^p, 2^(p+1)) is split into 16 equal sub-buckets, so a bucket's width
//! is at most 1/16 of its lower bound: reporting a bucket's midpoint is
//! within 1/32 (3.125 %) of any value in it. The last bucket holds
//! everything from 2^40 (about 18 minutes in ns) up.

pub const SUB_BITS: u32 = 4;
pub const SUB_BUCKETS: u64 = 1 << SUB_BITS;
/// Values at or above 2^MAX_POW share the last bucket.
pub const MAX_POW: u32 = 40;
pub const BUCKETS: u32 = SUB_BUCKETS as u32 + (MAX_POW - SUB_BITS) * SUB_BUCKETS as u32 + 1;
/// Largest relative error of a bucket's midpoint for values in it.
pub const MIDPOINT_RELATIVE_ERROR: f64 = 1.0 / (2 * SUB_BUCKETS) as f64;

/// The bucket of `value`.
#[inline(always)]
pub fn bucket(value: u64) -> u32 {
    if value < SUB_BUCKETS {
        return value as u32;
    }
    let pow = 63 - value.leading_zeros();
    if pow >= MAX_POW {
        return BUCKETS - 1;
    }
    let sub = ((value >> (pow - SUB_BITS)) & (SUB_BUCKETS - 1)) as u32;
    SUB_BUCKETS as u32 + (pow - SUB_BITS) * SUB_BUCKETS as u32 + sub
}

/// The values bucket `index` holds: `[low, high)`; the last is open-ended.
pub fn bounds(index: u32) -> (u64, u64) {
    if index < SUB_BUCKETS as u32 {
        return (index as u64, index as u64 + 1);
    }
    if index >= BUCKETS - 1 {
        return (1 << MAX_POW, u64::MAX);
    }
    let rel = index - SUB_BUCKETS as u32;
    let pow = rel / SUB_BUCKETS as u32 + SUB_BITS;
    let sub = (rel % SUB_BUCKETS as u32) as u64;
    let width = 1u64 << (pow - SUB_BITS);
    let low = (1u64 << pow) + sub * width;
    (low, low + width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_inside_its_buckets_bounds() {
        let mut value = 0u64;
        while value < (1 << 42) {
            let (low, high) = bounds(bucket(value));
            assert!(low <= value && value < high, "{value} not in [{low}, {high})");
            value = value * 5 / 4 + 1;
        }
        for value in [0, 15, 16, 17, 31, 32, 1000, 16384, (1 << 40) - 1, 1 << 40, u64::MAX] {
            let (low, high) = bounds(bucket(value));
            assert!(low <= value && (value < high || high == u64::MAX), "{value}");
        }
    }

    #[test]
    fn buckets_are_contiguous_and_exact_below_sixteen() {
        for value in 0..16 {
            assert_eq!(bounds(bucket(value)), (value, value + 1));
        }
        for index in 0..BUCKETS - 1 {
            assert_eq!(bounds(index).1, bounds(index + 1).0, "gap after bucket {index}");
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn bucket_width_is_at_most_a_sixteenth_of_its_low_bound() {
        for index in SUB_BUCKETS as u32..BUCKETS - 1 {
            let (low, high) = bounds(index);
            assert!((high - low) * SUB_BUCKETS <= low, "bucket {index}: [{low}, {high})");
        }
    }
}
