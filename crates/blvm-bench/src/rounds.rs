//! Interleaved rounds: the figures of one part, one value per round each,
//! and the ratios taken inside each round.
//!
//! On a shared machine the load drifts over seconds, so a floor measured
//! once and a system measured minutes later compare two different
//! machines. A part therefore measures its floor and its system
//! alternately (floor, system, floor, system …) and records every round's
//! value here; a ratio is computed from the two values of the same round
//! and only then summarised, so the drift hits its numerator and its
//! denominator alike. A figure is summarised as the median of its rounds
//! with their min–max.

use serde_json::{json, Map, Value};

/// The median and the min–max of a figure's rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spread {
    /// The median of the rounds (the mean of the two middle ones for an
    /// even count).
    pub median: f64,
    /// The lowest round.
    pub min: f64,
    /// The highest round.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
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
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    fn json(&self, unit: &str, rounds: &[f64]) -> Value {
        json!({
            "unit": unit,
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "rounds": rounds,
        })
    }
}

/// One figure: a name, a unit and its value in each round.
#[derive(Debug, Clone)]
struct Figure {
    key: String,
    unit: String,
    values: Vec<f64>,
}

/// A ratio of two figures, taken round by round.
#[derive(Debug, Clone)]
struct Ratio {
    key: String,
    numerator: String,
    denominator: String,
}

/// The rounds of one part: its figures in the order they were first
/// recorded, and the ratios declared between them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rounds {
    figures: Vec<Figure>,
    ratios: Vec<Ratio>,
}

impl Rounds {
    /// An empty record.
    pub fn new() -> Rounds {
        Rounds::default()
    }

    /// Records this round's `value` of figure `key`, in `unit`. A part
    /// records each of its figures once per round, so that index `i` of
    /// every figure is round `i`.
    pub fn record(&mut self, key: &str, unit: &str, value: f64) {
        match self.figures.iter_mut().find(|f| f.key == key) {
            Some(f) => f.values.push(value),
            None => self.figures.push(Figure {
                key: key.to_string(),
                unit: unit.to_string(),
                values: vec![value],
            }),
        }
    }

    /// Declares the ratio `key` = `numerator` / `denominator`, computed
    /// inside each round when summarised.
    pub fn ratio(&mut self, key: &str, numerator: &str, denominator: &str) {
        self.ratios.push(Ratio {
            key: key.to_string(),
            numerator: numerator.to_string(),
            denominator: denominator.to_string(),
        });
    }

    /// The rounds recorded so far (the longest figure's count).
    pub fn count(&self) -> usize {
        self.figures.iter().map(|f| f.values.len()).max().unwrap_or(0)
    }

    fn values(&self, key: &str) -> &[f64] {
        self.figures
            .iter()
            .find(|f| f.key == key)
            .map_or(&[][..], |f| &f.values[..])
    }

    /// The round-by-round values of ratio `r`: rounds where either side
    /// is missing or the denominator is zero are left out.
    fn ratio_values(&self, r: &Ratio) -> Vec<f64> {
        self.values(&r.numerator)
            .iter()
            .zip(self.values(&r.denominator))
            .filter(|(_, d)| **d != 0.0)
            .map(|(n, d)| n / d)
            .collect()
    }

    /// The spread of the declared ratio `key` across the rounds.
    #[cfg(test)]
    pub fn ratio_spread(&self, key: &str) -> Option<Spread> {
        let r = self.ratios.iter().find(|r| r.key == key)?;
        Spread::of(&self.ratio_values(r))
    }

    /// Every figure and ratio as lines `name  median [min–max] unit`.
    pub fn lines(&self) -> Vec<String> {
        let width = self
            .figures
            .iter()
            .map(|f| f.key.len())
            .chain(self.ratios.iter().map(|r| r.key.len()))
            .max()
            .unwrap_or(0);
        let mut out = Vec::new();
        for f in &self.figures {
            if let Some(s) = Spread::of(&f.values) {
                out.push(format!(
                    "  {:<width$}  {} [{} – {}] {}",
                    f.key,
                    num(s.median),
                    num(s.min),
                    num(s.max),
                    f.unit
                ));
            }
        }
        for r in &self.ratios {
            if let Some(s) = Spread::of(&self.ratio_values(r)) {
                out.push(format!(
                    "  {:<width$}  {:.2}x [{:.2} – {:.2}]  ({} / {}, inside each round)",
                    r.key, s.median, s.min, s.max, r.numerator, r.denominator
                ));
            }
        }
        out
    }

    /// The figures and ratios as JSON: `{"rounds": n, "figures": {key:
    /// {unit, median, min, max, rounds}}, "ratios": {key: {...}}}`.
    pub fn json(&self) -> Value {
        let mut figures = Map::new();
        for f in &self.figures {
            if let Some(s) = Spread::of(&f.values) {
                figures.insert(f.key.clone(), s.json(&f.unit, &f.values));
            }
        }
        let mut ratios = Map::new();
        for r in &self.ratios {
            let v = self.ratio_values(r);
            if let Some(s) = Spread::of(&v) {
                let mut entry = s.json("x", &v);
                if let Value::Object(m) = &mut entry {
                    m.insert("numerator".into(), r.numerator.clone().into());
                    m.insert("denominator".into(), r.denominator.clone().into());
                }
                ratios.insert(r.key.clone(), entry);
            }
        }
        json!({ "rounds": self.count(), "figures": figures, "ratios": ratios })
    }
}

/// A number with about three significant digits, for the text output.
fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_median_of_odd_and_even_counts() {
        let s = Spread::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 5.0));
        let s = Spread::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert!(Spread::of(&[]).is_none());
    }

    #[test]
    fn ratio_is_taken_inside_each_round_before_the_median() {
        let mut r = Rounds::new();
        // Round 1 on a quiet machine, round 2 on a loaded one: both sides
        // slow down alike, the ratio stays 2.
        for (floor, system) in [(1.0, 2.0), (10.0, 20.0), (3.0, 6.0)] {
            r.record("floor", "us", floor);
            r.record("system", "us", system);
        }
        r.ratio("system/floor", "system", "floor");
        let s = r.ratio_spread("system/floor").unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 2.0, 2.0));
        assert_eq!(r.count(), 3);
        let j = r.json();
        assert_eq!(j["figures"]["floor"]["median"], 3.0);
        assert_eq!(j["ratios"]["system/floor"]["max"], 2.0);
    }
}
