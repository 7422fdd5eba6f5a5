//! Summaries of repeated measurements: median, min, max, and per-run ratios.

use serde::Serialize;

/// Median, min and max of one figure's samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    /// Middle sample (mean of the two middle ones for an even count).
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// How many samples.
    pub n: usize,
}

impl Stats {
    /// Summarises `samples`; `None` when there are none (NaNs are ignored).
    pub fn of(samples: &[f64]) -> Option<Stats> {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stats {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }
}

/// Per-run ratios `ours[i] / base[i]` (pairs measured in the same run; a zero base is skipped).
pub fn ratios(ours: &[f64], base: &[f64]) -> Vec<f64> {
    ours.iter()
        .zip(base)
        .filter(|(_, b)| **b > 0.0)
        .map(|(o, b)| o / b)
        .collect()
}

/// Per-run differences `ours[i] - base[i]`.
pub fn differences(ours: &[f64], base: &[f64]) -> Vec<f64> {
    ours.iter().zip(base).map(|(o, b)| o - b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Stats::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (3.0, 1.0, 5.0, 3));
        let s = Stats::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 4.0, 4));
        assert_eq!(Stats::of(&[7.0]).unwrap().median, 7.0);
        assert!(Stats::of(&[]).is_none());
        assert_eq!(Stats::of(&[f64::NAN, 2.0]).unwrap().n, 1);
    }

    #[test]
    fn ratios_pair_runs_and_skip_zero_bases() {
        assert_eq!(ratios(&[2.0, 3.0, 1.0], &[1.0, 0.0, 2.0]), vec![2.0, 0.5]);
        assert_eq!(differences(&[2.0, 3.0], &[1.5, 1.0]), vec![0.5, 2.0]);
    }
}
