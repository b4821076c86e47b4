//! NEWS2, the National Early Warning Score 2 (Royal College of Physicians, 2017): a score per vital
//! sign, their sum (0–20) and the clinical risk band.
//!
//! | parameter | 3 | 2 | 1 | 0 | 1 | 2 | 3 |
//! | --- | --- | --- | --- | --- | --- | --- | --- |
//! | respiration rate /min | ≤8 | | 9–11 | 12–20 | | 21–24 | ≥25 |
//! | SpO₂ scale 1 % | ≤91 | 92–93 | 94–95 | ≥96 | | | |
//! | SpO₂ scale 2 % | ≤83 | 84–85 | 86–87 | 88–92, ≥93 on air | 93–94 on O₂ | 95–96 on O₂ | ≥97 on O₂ |
//! | air or oxygen | | oxygen | | air | | | |
//! | systolic BP mmHg | ≤90 | 91–100 | 101–110 | 111–219 | | | ≥220 |
//! | pulse /min | ≤40 | | 41–50 | 51–90 | 91–110 | 111–130 | ≥131 |
//! | consciousness | | | | alert | | | new confusion, V, P, U |
//! | temperature °C | ≤35.0 | | 35.1–36.0 | 36.1–38.0 | 38.1–39.0 | ≥39.1 | |
//!
//! Bands: `high` at 7 or more, `medium` at 5–6, `low_medium` when one parameter scores 3 and the
//! total is at most 4, `low` otherwise. Scale 2 is for patients with hypercapnic respiratory failure
//! (e.g. COPD) whose target saturation is 88–92 %, as a clinician prescribes. Temperatures are read to
//! one decimal, as charted.
//!
//! ```
//! use sgd_adapters::decision::news2::{score, SpO2Scale};
//! use sgd_schemas::events::decision::{Band, Consciousness, Vitals};
//!
//! let vitals = Vitals {
//!     respiration_rate: Some(22), spo2: Some(95), supplemental_oxygen: Some(false),
//!     systolic_bp: Some(105), pulse: Some(95), consciousness: Some(Consciousness::A),
//!     temperature: Some(38.2),
//! };
//! let news2 = score(&vitals, SpO2Scale::Scale1)?;
//! assert_eq!((news2.score, news2.band), (6, Band::Medium));
//! # Ok::<(), sgd_adapters::decision::news2::News2Error>(())
//! ```

use sgd_schemas::events::decision::{Band, Consciousness, Scale, ScoreRaised, Vitals};

/// Which SpO₂ scale applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpO2Scale {
    /// The default scale.
    #[default]
    Scale1,
    /// For hypercapnic respiratory failure with a prescribed target of 88–92 %.
    Scale2,
}

/// Why no score could be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum News2Error {
    /// A parameter was not measured → report the assessment without a score; NEWS2 needs all seven.
    #[error("NEWS2 needs {0}, which was not measured")]
    Missing(&'static str),
    /// A value cannot be a measurement (e.g. SpO₂ over 100 %) → refuse the record.
    #[error("{parameter} {value} is not a possible measurement")]
    Impossible {
        /// The parameter.
        parameter: &'static str,
        /// The value.
        value: String,
    },
}

/// A NEWS2 result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct News2 {
    /// The total, 0–20.
    pub score: u32,
    /// The clinical risk band.
    pub band: Band,
    /// The highest single-parameter score.
    pub highest_parameter: u32,
}

impl News2 {
    /// Whether the band calls for an event: `low_medium` or worse.
    pub fn is_raised(&self) -> bool {
        self.band >= Band::LowMedium
    }

    /// The `decision.score.raised` event when the band is `low_medium` or worse.
    pub fn score_raised(&self, person: &str, assessment_id: &str) -> Option<ScoreRaised> {
        self.is_raised().then(|| ScoreRaised {
            person: person.to_string(),
            assessment_id: assessment_id.to_string(),
            scale: Scale::News2,
            score: self.score,
            band: self.band,
        })
    }
}

/// Scores respiration rate per minute.
pub fn respiration_points(rate: u32) -> u32 {
    match rate {
        0..=8 => 3,
        9..=11 => 1,
        12..=20 => 0,
        21..=24 => 2,
        _ => 3,
    }
}

/// Scores SpO₂ (%) on `scale`; `on_oxygen` matters on scale 2 only.
pub fn spo2_points(spo2: u32, scale: SpO2Scale, on_oxygen: bool) -> u32 {
    match scale {
        SpO2Scale::Scale1 => match spo2 {
            0..=91 => 3,
            92..=93 => 2,
            94..=95 => 1,
            _ => 0,
        },
        SpO2Scale::Scale2 => match (spo2, on_oxygen) {
            (0..=83, _) => 3,
            (84..=85, _) => 2,
            (86..=87, _) => 1,
            (88..=92, _) | (_, false) => 0,
            (93..=94, true) => 1,
            (95..=96, true) => 2,
            (_, true) => 3,
        },
    }
}

/// Scores air (0) or supplemental oxygen (2).
pub fn oxygen_points(on_oxygen: bool) -> u32 {
    if on_oxygen {
        2
    } else {
        0
    }
}

/// Scores systolic blood pressure, mmHg.
pub fn systolic_points(systolic: u32) -> u32 {
    match systolic {
        0..=90 => 3,
        91..=100 => 2,
        101..=110 => 1,
        111..=219 => 0,
        _ => 3,
    }
}

/// Scores pulse per minute.
pub fn pulse_points(pulse: u32) -> u32 {
    match pulse {
        0..=40 => 3,
        41..=50 => 1,
        51..=90 => 0,
        91..=110 => 1,
        111..=130 => 2,
        _ => 3,
    }
}

/// Scores consciousness: alert 0, new confusion, voice, pain or unresponsive 3.
pub fn consciousness_points(level: Consciousness) -> u32 {
    match level {
        Consciousness::A => 0,
        Consciousness::C | Consciousness::V | Consciousness::P | Consciousness::U => 3,
    }
}

/// Scores temperature, °C, read to one decimal.
pub fn temperature_points(celsius: f64) -> u32 {
    let tenths = (celsius * 10.0).round() as i64;
    match tenths {
        i64::MIN..=350 => 3,
        351..=360 => 1,
        361..=380 => 0,
        381..=390 => 1,
        _ => 2,
    }
}

/// The NEWS2 score and band of `vitals` on `scale`.
pub fn score(vitals: &Vitals, scale: SpO2Scale) -> Result<News2, News2Error> {
    let rr = vitals.respiration_rate.ok_or(News2Error::Missing("respiration_rate"))?;
    let spo2 = vitals.spo2.ok_or(News2Error::Missing("spo2"))?;
    let oxygen = vitals.supplemental_oxygen.ok_or(News2Error::Missing("supplemental_oxygen"))?;
    let systolic = vitals.systolic_bp.ok_or(News2Error::Missing("systolic_bp"))?;
    let pulse = vitals.pulse.ok_or(News2Error::Missing("pulse"))?;
    let consciousness = vitals.consciousness.ok_or(News2Error::Missing("consciousness"))?;
    let temperature = vitals.temperature.ok_or(News2Error::Missing("temperature"))?;
    let impossible = |parameter, value: String| News2Error::Impossible { parameter, value };
    if spo2 > 100 {
        return Err(impossible("spo2", spo2.to_string()));
    }
    if !(temperature.is_finite() && (10.0..=50.0).contains(&temperature)) {
        return Err(impossible("temperature", temperature.to_string()));
    }
    if rr > 120 || pulse > 400 || systolic > 400 {
        return Err(impossible("respiration_rate, pulse or systolic_bp", format!("{rr}/{pulse}/{systolic}")));
    }
    let points = [
        respiration_points(rr),
        spo2_points(spo2, scale, oxygen),
        oxygen_points(oxygen),
        systolic_points(systolic),
        pulse_points(pulse),
        consciousness_points(consciousness),
        temperature_points(temperature),
    ];
    let total: u32 = points.iter().sum();
    let highest = points.iter().copied().max().unwrap_or(0);
    Ok(News2 { score: total, band: band(total, highest), highest_parameter: highest })
}

/// The band of a total with its highest single-parameter score.
pub fn band(total: u32, highest_parameter: u32) -> Band {
    match total {
        7.. => Band::High,
        5..=6 => Band::Medium,
        _ if highest_parameter >= 3 => Band::LowMedium,
        _ => Band::Low,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every parameter normal: score 0.
    fn normal() -> Vitals {
        Vitals {
            respiration_rate: Some(16),
            spo2: Some(97),
            supplemental_oxygen: Some(false),
            systolic_bp: Some(120),
            pulse: Some(70),
            consciousness: Some(Consciousness::A),
            temperature: Some(37.0),
        }
    }

    #[test]
    fn every_boundary_of_every_parameter() {
        let rr = [(0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (60, 3)];
        for (value, points) in rr {
            let v = Vitals { respiration_rate: Some(value), ..normal() };
            assert_eq!(score(&v, SpO2Scale::Scale1).unwrap().score, points, "respiration {value}");
        }
        let scale1 = [(50, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)];
        for (value, points) in scale1 {
            let v = Vitals { spo2: Some(value), ..normal() };
            assert_eq!(score(&v, SpO2Scale::Scale1).unwrap().score, points, "SpO2 scale 1 {value}");
            // on scale 1, oxygen adds its own 2 only
            let v = Vitals { spo2: Some(value), supplemental_oxygen: Some(true), ..normal() };
            assert_eq!(score(&v, SpO2Scale::Scale1).unwrap().score, points + 2, "SpO2 scale 1 {value} on O2");
        }
        // (SpO2, points on air, points of SpO2 on oxygen)
        let scale2 = [
            (70, 3, 3),
            (83, 3, 3),
            (84, 2, 2),
            (85, 2, 2),
            (86, 1, 1),
            (87, 1, 1),
            (88, 0, 0),
            (92, 0, 0),
            (93, 0, 1),
            (94, 0, 1),
            (95, 0, 2),
            (96, 0, 2),
            (97, 0, 3),
            (100, 0, 3),
        ];
        for (value, on_air, on_oxygen) in scale2 {
            let v = Vitals { spo2: Some(value), ..normal() };
            assert_eq!(score(&v, SpO2Scale::Scale2).unwrap().score, on_air, "SpO2 scale 2 {value} on air");
            let v = Vitals { spo2: Some(value), supplemental_oxygen: Some(true), ..normal() };
            assert_eq!(score(&v, SpO2Scale::Scale2).unwrap().score, on_oxygen + 2, "SpO2 scale 2 {value} on O2");
        }
        let bp = [(50, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3), (260, 3)];
        for (value, points) in bp {
            let v = Vitals { systolic_bp: Some(value), ..normal() };
            assert_eq!(score(&v, SpO2Scale::Scale1).unwrap().score, points, "systolic {value}");
        }
        let pulse =
            [(30, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2), (130, 2), (131, 3)];
        for (value, points) in pulse {
            let v = Vitals { pulse: Some(value), ..normal() };
            assert_eq!(score(&v, SpO2Scale::Scale1).unwrap().score, points, "pulse {value}");
        }
        let acvpu = [
            (Consciousness::A, 0),
            (Consciousness::C, 3),
            (Consciousness::V, 3),
            (Consciousness::P, 3),
            (Consciousness::U, 3),
        ];
        for (value, points) in acvpu {
            let v = Vitals { consciousness: Some(value), ..normal() };
            assert_eq!(score(&v, SpO2Scale::Scale1).unwrap().score, points, "consciousness {value:?}");
        }
        let temperature = [
            (33.0, 3),
            (35.0, 3),
            (35.1, 1),
            (36.0, 1),
            (36.1, 0),
            (38.0, 0),
            (38.1, 1),
            (39.0, 1),
            (39.1, 2),
            (41.0, 2),
        ];
        for (value, points) in temperature {
            let v = Vitals { temperature: Some(value), ..normal() };
            assert_eq!(score(&v, SpO2Scale::Scale1).unwrap().score, points, "temperature {value}");
        }
    }

    #[test]
    fn bands_and_when_a_score_is_raised() {
        // (total, highest single parameter, band)
        let cases = [
            (0, 0, Band::Low),
            (4, 2, Band::Low),
            (3, 3, Band::LowMedium),
            (4, 3, Band::LowMedium),
            (5, 2, Band::Medium),
            (5, 3, Band::Medium),
            (6, 3, Band::Medium),
            (7, 2, Band::High),
            (20, 3, Band::High),
        ];
        for (total, highest, expected) in cases {
            assert_eq!(band(total, highest), expected, "{total}/{highest}");
        }
        let low = score(&normal(), SpO2Scale::Scale1).unwrap();
        assert_eq!((low.score, low.band), (0, Band::Low));
        assert!(low.score_raised("p", "a").is_none());
        // one parameter at 3: low-medium, raised
        let confused = score(&Vitals { consciousness: Some(Consciousness::C), ..normal() }, SpO2Scale::Scale1).unwrap();
        assert_eq!((confused.score, confused.band), (3, Band::LowMedium));
        let raised = confused.score_raised("p", "a").unwrap();
        assert_eq!((raised.score, raised.band, raised.scale), (3, Band::LowMedium, Scale::News2));
        // reference cases: sick patient
        let sick = Vitals {
            respiration_rate: Some(26),
            spo2: Some(90),
            supplemental_oxygen: Some(true),
            systolic_bp: Some(95),
            pulse: Some(125),
            consciousness: Some(Consciousness::V),
            temperature: Some(39.5),
        };
        let news2 = score(&sick, SpO2Scale::Scale1).unwrap();
        assert_eq!((news2.score, news2.band), (3 + 3 + 2 + 2 + 2 + 3 + 2, Band::High));
        // the maximum is 20
        let worst = Vitals {
            respiration_rate: Some(30),
            spo2: Some(80),
            supplemental_oxygen: Some(true),
            systolic_bp: Some(80),
            pulse: Some(150),
            consciousness: Some(Consciousness::U),
            temperature: Some(34.0),
        };
        assert_eq!(score(&worst, SpO2Scale::Scale1).unwrap().score, 20);
        assert_eq!(score(&worst, SpO2Scale::Scale2).unwrap().score, 20);
    }

    #[test]
    fn missing_and_impossible_vitals_are_errors() {
        let v = Vitals { pulse: None, ..normal() };
        assert_eq!(score(&v, SpO2Scale::Scale1), Err(News2Error::Missing("pulse")));
        let v = Vitals { spo2: Some(101), ..normal() };
        assert!(matches!(score(&v, SpO2Scale::Scale1), Err(News2Error::Impossible { parameter: "spo2", .. })));
        let v = Vitals { temperature: Some(f64::NAN), ..normal() };
        assert!(score(&v, SpO2Scale::Scale1).is_err());
    }
}
