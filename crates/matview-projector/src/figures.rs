//! The projector's recent figures for the console: a ring of fixed
//! intervals (counts, lag, freshness percentiles), pure apart from the
//! clock the caller passes in.

use std::collections::VecDeque;

use hdrhistogram::Histogram;

use matview_api::figures::FigureSample;

/// Two seconds: fine enough to see a stall, coarse enough to be cheap.
pub const INTERVAL_MS: i64 = 2_000;
/// Five minutes of intervals.
pub const KEPT: usize = 150;
/// Freshness beyond a day is recorded as a day (a store catching up on an
/// old topic); the histogram keeps two significant digits.
const MAX_AGE_MS: u64 = 86_400_000;

pub struct FigureRing {
    samples: VecDeque<FigureSample>,
    /// Ages of the events committed in the open (newest) interval.
    ages: Histogram<u32>,
    lag: i64,
}

impl Default for FigureRing {
    fn default() -> Self {
        FigureRing {
            samples: VecDeque::with_capacity(KEPT + 1),
            // Bounds are constants that hdrhistogram accepts: 1 ≤ low, high ≥ 2·low, 2 digits.
            ages: Histogram::new_with_bounds(1, MAX_AGE_MS, 2).expect("valid histogram bounds"),
            lag: 0,
        }
    }
}

impl FigureRing {
    /// A committed batch: its counts, and each event's age at commit
    /// (`visible_ms` minus its Kafka timestamp; events without one count
    /// only in the totals).
    pub fn batch(
        &mut self,
        visible_ms: i64,
        events: u64,
        records: u64,
        dead_letter_reasons: &[&'static str],
        event_times_ms: &[i64],
    ) {
        let open = self.advance(visible_ms);
        open.events += events;
        open.records += records;
        open.dead_lettered += dead_letter_reasons.len() as u64;
        for reason in dead_letter_reasons {
            *open
                .dead_lettered_by_reason
                .entry((*reason).to_string())
                .or_insert(0) += 1;
        }
        for &t in event_times_ms {
            if t > 0 {
                let age = u64::try_from(visible_ms - t)
                    .unwrap_or(0)
                    .clamp(1, MAX_AGE_MS);
                self.ages.saturating_record(age);
            }
        }
    }

    pub fn set_lag(&mut self, now_ms: i64, lag: i64) {
        self.lag = lag;
        self.advance(now_ms).lag = lag;
    }

    /// The kept intervals up to `now_ms`, oldest first, the open one last
    /// with its percentiles so far.
    pub fn samples(&mut self, now_ms: i64) -> Vec<FigureSample> {
        self.advance(now_ms);
        let mut out: Vec<FigureSample> = self.samples.iter().cloned().collect();
        if let Some(open) = out.last_mut() {
            self.fill_percentiles(open);
        }
        out
    }

    fn fill_percentiles(&self, sample: &mut FigureSample) {
        if !self.ages.is_empty() {
            sample.freshness_p50_ms = Some(self.ages.value_at_quantile(0.5));
            sample.freshness_p99_ms = Some(self.ages.value_at_quantile(0.99));
        }
    }

    /// The interval holding `now_ms`, opened (and the ones before it
    /// closed) as needed. A clock that went back counts into the open one.
    fn advance(&mut self, now_ms: i64) -> &mut FigureSample {
        let start = now_ms - now_ms.rem_euclid(INTERVAL_MS);
        let open_at = self.samples.back().map(|s| s.at_ms);
        if open_at.is_none_or(|at| at < start) {
            if let Some(mut last) = self.samples.pop_back() {
                self.fill_percentiles(&mut last);
                self.samples.push_back(last);
            }
            self.ages.reset();
            // Quiet intervals in between are kept as zero counts, at most a ring's worth.
            let first = open_at.map_or(start, |at| {
                (at + INTERVAL_MS).max(start - KEPT as i64 * INTERVAL_MS)
            });
            let mut at = first;
            while at <= start {
                self.samples.push_back(FigureSample {
                    at_ms: at,
                    events: 0,
                    records: 0,
                    dead_lettered: 0,
                    dead_lettered_by_reason: Default::default(),
                    lag: self.lag,
                    freshness_p50_ms: None,
                    freshness_p99_ms: None,
                });
                at += INTERVAL_MS;
            }
            while self.samples.len() > KEPT {
                self.samples.pop_front();
            }
        }
        self.samples
            .back_mut()
            .expect("an interval was just opened")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn counts_fall_in_their_interval_and_quiet_ones_are_zero() {
        let mut ring = FigureRing::default();
        ring.batch(T0 + 100, 10, 12, &["not-json", "missing-field"], &[]);
        ring.batch(T0 + 1_900, 5, 5, &["not-json"], &[]);
        ring.batch(T0 + 3 * INTERVAL_MS + 1, 7, 7, &[], &[]);
        let samples = ring.samples(T0 + 3 * INTERVAL_MS + 5);
        let counts: Vec<(u64, u64, u64)> = samples
            .iter()
            .map(|s| (s.events, s.records, s.dead_lettered))
            .collect();
        assert_eq!(counts, vec![(15, 17, 3), (0, 0, 0), (0, 0, 0), (7, 7, 0)]);
        assert_eq!(
            samples[0].dead_lettered_by_reason,
            [
                ("missing-field".to_string(), 1),
                ("not-json".to_string(), 2)
            ]
            .into()
        );
        assert!(samples[1].dead_lettered_by_reason.is_empty());
        assert!(
            samples
                .windows(2)
                .all(|w| w[1].at_ms - w[0].at_ms == INTERVAL_MS)
        );
    }

    #[test]
    fn freshness_percentiles_are_of_each_intervals_own_events() {
        let mut ring = FigureRing::default();
        // 99 events 10 ms old and one 5 s old, then an interval of 100 ms-old ones.
        let mut times = vec![T0 + 500 - 10; 99];
        times.push(T0 + 500 - 5_000);
        ring.batch(T0 + 500, 100, 100, &[], &times);
        ring.batch(
            T0 + INTERVAL_MS + 500,
            3,
            3,
            &[],
            &[T0 + INTERVAL_MS + 400; 3],
        );
        let samples = ring.samples(T0 + INTERVAL_MS + 600);
        let first = &samples[0];
        assert_eq!(first.freshness_p50_ms, Some(10));
        let p99 = first.freshness_p99_ms.expect("p99");
        assert!(
            (9..=11).contains(&p99),
            "p99 {p99}: the 99th of 100 is a 10 ms one"
        );
        let second = &samples[1];
        assert_eq!(second.freshness_p50_ms, Some(100));
        assert_eq!(second.freshness_p99_ms, Some(100));
        let empty = ring.samples(T0 + 2 * INTERVAL_MS + 1);
        assert_eq!(empty.last().and_then(|s| s.freshness_p50_ms), None);
    }

    #[test]
    fn lag_is_carried_into_quiet_intervals_and_the_ring_keeps_five_minutes() {
        let mut ring = FigureRing::default();
        ring.set_lag(T0, 42);
        let samples = ring.samples(T0 + 1_000 * INTERVAL_MS);
        assert_eq!(samples.len(), KEPT);
        assert!(samples.iter().all(|s| s.lag == 42));
        assert_eq!(
            samples.last().map(|s| s.at_ms),
            Some(T0 + 1_000 * INTERVAL_MS)
        );
    }

    #[test]
    fn an_event_from_the_future_counts_as_fresh() {
        let mut ring = FigureRing::default();
        ring.batch(T0, 1, 1, &[], &[T0 + 60_000]);
        assert_eq!(ring.samples(T0)[0].freshness_p50_ms, Some(1));
    }
}
