//! Per-track speed measurement over the zone.
//!
//! Each matched detection of a confirmed track contributes its ground point (bottom centre of the
//! box, where the tyres touch the road: the only point of the box that lies on the calibrated
//! plane) at the frame's capture time, while that point is inside the zone. When the point leaves
//! the zone, or the track ends inside it, the samples are fitted once and dropped. State is kept
//! only for tracks currently inside the zone plus a small "already measured" marker until the
//! track ends; markers and samples of tracks that go quiet without [`SpeedEstimator::end_track`]
//! are dropped after an idle time, and samples per track are capped
//! ([`SpeedEstimator::with_state_limits`]), so memory stays bounded however long the stream runs.

use std::collections::HashMap;

use super::uncertainty::{student_t_quantile, CalibrationUncertainty};
use super::{fit_zone_motion, GroundSample, Homography, MotionFitOptions, SpeedLines, Zone};
use crate::detect::BBox;

/// One in-zone sample: capture time (s), ground point (m), ground covariance per px² of box noise
/// (m²/px²), and the image point it came from (px).
type Sample = (f64, [f64; 2], [[f64; 2]; 2], [f64; 2]);

/// Measurement thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeedConfig {
    /// Fewest in-zone samples for a measurement; fewer give none (the track was too short).
    pub min_samples: u32,
    /// Speeds above this are discarded as implausible (a track that jumped between vehicles).
    pub max_speed_kmh: f64,
    /// Prior standard deviation of a vehicle's acceleration in the zone, m/s². The fit estimates
    /// the acceleration with this zero-mean prior and reports the mean speed over the zone; 0
    /// fits a constant speed. See [`super::fit_zone_motion`].
    pub accel_prior_sd_m_s2: f64,
    /// Samples further than this many robust standard deviations from the fitted motion are
    /// dropped before the final fit (boxes of another vehicle after a bad association).
    pub outlier_z: f64,
    /// A track whose samples scatter about the fitted motion by more than this box-edge noise
    /// (estimated from the fit, along or across the road) is not measured, px: its boxes are not
    /// one vehicle's (an identity switch between vehicles) or the detector failed on it.
    pub max_noise_px: f64,
    /// Standard uncertainty of a *systematic* offset of the box's bottom edge from the tyres'
    /// contact, px (a detector draws its boxes a little loose or tight, the same way for every
    /// frame). Box noise averages out over the zone; such an offset does not: where metres per
    /// pixel differ between zone entry and exit, it stretches or shrinks the distance covered.
    /// The interval includes it; 0 for exact boxes (synthetic detections).
    pub box_bottom_sd_px: f64,
    /// How the speed is obtained from the in-zone samples.
    pub method: SpeedMethod,
}

/// How a track's in-zone samples become a speed.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum SpeedMethod {
    /// Least-squares slope of ground position against time over the zone (needs the calibration).
    #[default]
    Fit,
    /// Time between two lines across the road a known distance apart (see [`SpeedLines`]); the
    /// zone must contain both lines.
    Lines(SpeedLines),
}

/// A track is measured only when its first and last in-zone samples lie at least this share of
/// the zone length apart on the ground.
pub const MIN_PASSAGE_SHARE: f64 = 0.25;

/// Default per-track sample cap, see [`SpeedEstimator::with_state_limits`].
pub const DEFAULT_MAX_SAMPLES: usize = 4096;
/// Default idle time after which a track's state is dropped, s.
pub const DEFAULT_MAX_IDLE_S: f64 = 60.0;
/// Default prior standard deviation of the acceleration in the zone, m/s².
pub const DEFAULT_ACCEL_PRIOR_SD_M_S2: f64 = 1.5;
/// Default outlier cut, robust standard deviations.
pub const DEFAULT_OUTLIER_Z: f64 = 4.0;
/// Default largest box-edge noise estimated from a track's fit, px.
pub const DEFAULT_MAX_NOISE_PX: f64 = 6.0;

impl Default for SpeedConfig {
    fn default() -> Self {
        Self {
            min_samples: 5,
            max_speed_kmh: 250.0,
            accel_prior_sd_m_s2: DEFAULT_ACCEL_PRIOR_SD_M_S2,
            outlier_z: DEFAULT_OUTLIER_Z,
            max_noise_px: DEFAULT_MAX_NOISE_PX,
            box_bottom_sd_px: 0.0,
            method: SpeedMethod::Fit,
        }
    }
}

/// One vehicle's speed, produced once per track.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeedMeasurement {
    /// Tracker id.
    pub track_id: u64,
    /// Class as reported by the tracker at the last sample.
    pub class: String,
    /// Speed, km/h.
    pub speed_kmh: f64,
    /// 95% confidence interval of the speed, km/h, `[low, high]`: the fit's statistical error
    /// (Student-t) combined with the calibration's error when the estimator has it
    /// ([`SpeedEstimator::with_calibration`]) and the detector's systematic box offset
    /// ([`SpeedConfig::box_bottom_sd_px`]).
    pub speed_ci95_kmh: [f64; 2],
    /// In-zone samples used by the fit.
    pub samples: u32,
    /// Capture time of the first in-zone sample, s.
    pub t_enter_s: f64,
    /// Capture time of the last in-zone sample, s.
    pub t_exit_s: f64,
    /// Distance covered between `t_enter_s` and `t_exit_s` according to the fit, m.
    pub distance_m: f64,
    /// RMS along-track distance of the samples kept from the fitted motion, m (a quality figure).
    pub residual_rms_m: f64,
    /// How the speed was obtained: `"fit"` (robust least squares over the zone, mean speed
    /// between the fitted zone entry and exit) or `"lines"` (time between two lines; then
    /// `t_enter_s`/`t_exit_s` are the crossing times and `distance_m` the configured distance).
    pub method: &'static str,
}

/// Where a track stands with respect to the zone.
#[derive(Debug)]
enum TrackZone {
    /// Ground point inside the zone; collecting samples.
    Inside {
        class: String,
        samples: Vec<Sample>,
        last_seen_t_s: f64,
    },
    /// Left the zone (measured, or the fit was rejected): nothing more until the track ends.
    Done { last_seen_t_s: f64 },
}

impl TrackZone {
    fn last_seen_t_s(&self) -> f64 {
        match self {
            TrackZone::Inside { last_seen_t_s, .. } | TrackZone::Done { last_seen_t_s } => {
                *last_seen_t_s
            }
        }
    }
}

/// Turns tracked boxes into one speed measurement per vehicle.
#[derive(Debug)]
pub struct SpeedEstimator {
    h: Homography,
    zone: Zone,
    /// The zone polygon on the ground, m (None when a vertex maps to no ground point).
    zone_ground_m: Option<Vec<[f64; 2]>>,
    calibration: Option<CalibrationUncertainty>,
    cfg: SpeedConfig,
    max_samples: usize,
    max_idle_s: f64,
    tracks: HashMap<u64, TrackZone>,
    latest_t_s: f64,
    last_sweep_t_s: f64,
}

impl SpeedEstimator {
    /// An estimator for one camera's calibration and zone.
    pub fn new(h: Homography, zone: Zone, cfg: SpeedConfig) -> Self {
        let zone_ground_m = zone
            .polygon_px()
            .iter()
            .map(|p| h.image_to_world(*p))
            .collect::<Option<Vec<_>>>();
        Self {
            h,
            zone,
            zone_ground_m,
            calibration: None,
            cfg,
            max_samples: DEFAULT_MAX_SAMPLES,
            max_idle_s: DEFAULT_MAX_IDLE_S,
            tracks: HashMap::new(),
            latest_t_s: f64::NEG_INFINITY,
            last_sweep_t_s: f64::NEG_INFINITY,
        }
    }

    /// Sets the memory bounds: a per-track sample cap (when reached, every other sample is dropped,
    /// so the time span and the fit stay valid and a vehicle stopped in the zone cannot grow memory
    /// without bound; at least 2), and the time (stream s) after which the state of a track not
    /// observed is dropped (a safety net for callers that miss an `end_track`).
    pub fn with_state_limits(mut self, max_samples: usize, max_idle_s: f64) -> Self {
        self.max_samples = max_samples.max(2);
        self.max_idle_s = max_idle_s;
        self
    }

    /// Adds the calibration's uncertainty, so that intervals include the calibration error
    /// (without it they carry only the fit's statistical error).
    pub fn with_calibration(mut self, calibration: CalibrationUncertainty) -> Self {
        self.calibration = Some(calibration);
        self
    }

    /// Applies a reloaded zone and speed settings without dropping the tracks in progress: their
    /// ground samples do not depend on the zone, so a vehicle inside keeps its samples and is
    /// judged against the new zone from its next observation. (The calibration is not swapped
    /// here: samples already projected with the old one would mix with new ones.)
    pub fn reconfigure(&mut self, zone: Zone, cfg: SpeedConfig) {
        self.zone_ground_m = zone
            .polygon_px()
            .iter()
            .map(|p| self.h.image_to_world(*p))
            .collect::<Option<Vec<_>>>();
        self.zone = zone;
        self.cfg = cfg;
    }

    /// The calibration in use.
    pub fn homography(&self) -> &Homography {
        &self.h
    }

    /// The zone in use.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// Tracks with state held (inside the zone or awaiting `end_track`).
    pub fn held_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Feeds a matched detection of a confirmed track at frame time `t_s`. Returns the measurement
    /// when the track's ground point has just left the zone (it was inside before), once per track.
    /// Leaving with fewer than `min_samples` samples is not a passage (box noise flickering across
    /// the zone edge): those samples are dropped and the track may enter again.
    pub fn observe(
        &mut self,
        track_id: u64,
        class: &str,
        t_s: f64,
        bbox: &BBox,
    ) -> Option<SpeedMeasurement> {
        if !t_s.is_finite() {
            return None;
        }
        self.latest_t_s = self.latest_t_s.max(t_s);
        self.sweep();
        let (gx, gy) = bbox.bottom_center();
        let ground_px = [gx as f64, gy as f64];
        let inside = self.zone.contains(ground_px);
        match self.tracks.get_mut(&track_id) {
            Some(TrackZone::Done { last_seen_t_s }) => {
                *last_seen_t_s = last_seen_t_s.max(t_s);
                None
            }
            Some(TrackZone::Inside {
                class: held_class,
                samples,
                last_seen_t_s,
            }) => {
                *last_seen_t_s = last_seen_t_s.max(t_s);
                if inside {
                    if held_class != class {
                        class.clone_into(held_class);
                    }
                    if let Some((g, cov)) = ground_sample(&self.h, ground_px) {
                        samples.push((t_s, g, cov, ground_px));
                        if samples.len() > self.max_samples {
                            thin(samples);
                        }
                    }
                    return None;
                }
                if samples.len() < self.cfg.min_samples as usize {
                    // A box-noise flicker across the zone edge on entry (or a brief graze of the
                    // zone): forget it, so that the real passage can still be measured.
                    self.tracks.remove(&track_id);
                    return None;
                }
                let done = TrackZone::Done {
                    last_seen_t_s: *last_seen_t_s,
                };
                let state = self.tracks.insert(track_id, done)?;
                self.measure(track_id, state)
            }
            None => {
                if inside {
                    let samples = ground_sample(&self.h, ground_px)
                        .map(|(g, cov)| vec![(t_s, g, cov, ground_px)])
                        .unwrap_or_default();
                    self.tracks.insert(
                        track_id,
                        TrackZone::Inside {
                            class: class.to_owned(),
                            samples,
                            last_seen_t_s: t_s,
                        },
                    );
                }
                None
            }
        }
    }

    /// The track ended: measures it if it was in the zone and not measured yet, and frees its state.
    pub fn end_track(&mut self, track_id: u64) -> Option<SpeedMeasurement> {
        let state = self.tracks.remove(&track_id)?;
        self.measure(track_id, state)
    }

    /// Fits the samples of a track that was inside the zone.
    fn measure(&self, track_id: u64, state: TrackZone) -> Option<SpeedMeasurement> {
        let TrackZone::Inside { class, samples, .. } = state else {
            return None;
        };
        if samples.len() < self.cfg.min_samples as usize {
            tracing::debug!(
                track_id,
                samples = samples.len(),
                min_samples = self.cfg.min_samples,
                "no speed: too few samples in the zone"
            );
            return None;
        }
        if let SpeedMethod::Lines(lines) = &self.cfg.method {
            // The image points themselves: the lines method needs no calibration.
            let px: Vec<(f64, [f64; 2])> = samples.iter().map(|s| (s.0, s.3)).collect();
            let max_kmh = self.cfg.max_speed_kmh;
            return super::lines::measure_lines(lines, track_id, class, &px, max_kmh);
        }
        let ground: Vec<GroundSample> = samples
            .iter()
            .map(|s| GroundSample {
                t_s: s.0,
                ground_m: s.1,
                cov_m2_per_px2: s.2,
            })
            .collect();
        let opts = MotionFitOptions {
            accel_prior_sd_m_s2: self.cfg.accel_prior_sd_m_s2,
            outlier_z: self.cfg.outlier_z,
        };
        let Some(fit) = fit_zone_motion(&ground, self.zone_ground_m.as_deref(), &opts) else {
            tracing::debug!(track_id, "no speed: samples span no time");
            return None;
        };
        let speed_kmh = fit.speed_m_s * 3.6;
        let noise_px = fit.noise_px.max(fit.lateral_noise_px);
        if noise_px > self.cfg.max_noise_px {
            tracing::debug!(
                track_id,
                noise_px,
                max_noise_px = self.cfg.max_noise_px,
                "no speed: samples scatter too much for one vehicle"
            );
            return None;
        }
        // A passage moves through the zone; a box that stays put (a false detection on a sign or
        // a shadow, a parked vehicle) is no passage however many samples it has.
        let span_m = match (samples.first(), samples.last()) {
            (Some(a), Some(b)) => (b.1[0] - a.1[0]).hypot(b.1[1] - a.1[1]),
            _ => 0.0,
        };
        let min_span_m = MIN_PASSAGE_SHARE * self.zone.length_m(&self.h).unwrap_or(0.0);
        if span_m < min_span_m {
            tracing::debug!(
                track_id,
                span_m,
                min_span_m,
                "no speed: the samples cover too little of the zone to be a passage"
            );
            return None;
        }
        if speed_kmh > self.cfg.max_speed_kmh {
            tracing::debug!(
                track_id,
                speed_kmh,
                max_speed_kmh = self.cfg.max_speed_kmh,
                "no speed: implausible, discarded"
            );
            return None;
        }
        let (t_enter_s, t_exit_s) = samples
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
                (lo.min(s.0), hi.max(s.0))
            });
        let fit_half_kmh = student_t_quantile(0.975, fit.dof) * fit.speed_se_m_s * 3.6;
        let cal_half_kmh = self.calibration_rel_sd(&fit).map_or(0.0, |(rel_sd, dof)| {
            student_t_quantile(0.975, dof) * rel_sd * speed_kmh
        });
        let box_half_kmh = self
            .box_bias_rel_sd(&fit)
            .map_or(0.0, |rel_sd| 1.96 * rel_sd * speed_kmh);
        let half_kmh = fit_half_kmh.hypot(cal_half_kmh).hypot(box_half_kmh);
        Some(SpeedMeasurement {
            track_id,
            class,
            speed_kmh,
            speed_ci95_kmh: [(speed_kmh - half_kmh).max(0.0), speed_kmh + half_kmh],
            samples: u32::try_from(fit.inliers).unwrap_or(u32::MAX),
            t_enter_s,
            t_exit_s,
            distance_m: fit.speed_m_s * (t_exit_s - t_enter_s),
            residual_rms_m: fit.residual_rms_m,
            method: "fit",
        })
    }

    /// Relative standard deviation of the speed due to the calibration, and its degrees of
    /// freedom: that of the ground distance between the fitted zone entry and exit points.
    fn calibration_rel_sd(&self, fit: &super::MotionFit) -> Option<(f64, f64)> {
        let cal = self.calibration.as_ref()?;
        let [s0, s1] = fit.s_in_out_m;
        let at = |s: f64| {
            self.h.world_to_image([
                fit.origin_m[0] + s * fit.direction[0],
                fit.origin_m[1] + s * fit.direction[1],
            ])
        };
        let sd_m = cal.distance_sd_m(at(s0)?, at(s1)?, fit.direction)?;
        let len_m = (s1 - s0).abs();
        (len_m > 0.0).then(|| (sd_m / len_m, cal.dof as f64))
    }

    /// Relative standard deviation of the speed due to a systematic bottom-edge offset of
    /// `box_bottom_sd_px`: the offset moves every ground point along the road by (metres per px
    /// along the road at that point) x offset, so the distance between the fitted zone entry and
    /// exit changes by the offset times the difference of those scales.
    fn box_bias_rel_sd(&self, fit: &super::MotionFit) -> Option<f64> {
        if self.cfg.box_bottom_sd_px <= 0.0 {
            return None;
        }
        let [s0, s1] = fit.s_in_out_m;
        let along_m_per_px = |s: f64| -> Option<f64> {
            let g = [
                fit.origin_m[0] + s * fit.direction[0],
                fit.origin_m[1] + s * fit.direction[1],
            ];
            let p = self.h.world_to_image(g)?;
            let below = self.h.image_to_world([p[0], p[1] + 1.0])?;
            Some((below[0] - g[0]) * fit.direction[0] + (below[1] - g[1]) * fit.direction[1])
        };
        let len_m = (s1 - s0).abs();
        let spread = (along_m_per_px(s1)? - along_m_per_px(s0)?).abs();
        (len_m > 0.0).then(|| self.cfg.box_bottom_sd_px * spread / len_m)
    }

    /// Drops state of tracks not seen for `max_idle_s` (checked about once per second of stream).
    fn sweep(&mut self) {
        if self.latest_t_s - self.last_sweep_t_s < 1.0 {
            return;
        }
        self.last_sweep_t_s = self.latest_t_s;
        let (latest, max_idle) = (self.latest_t_s, self.max_idle_s);
        self.tracks.retain(|id, s| {
            let keep = latest - s.last_seen_t_s() <= max_idle;
            if !keep {
                tracing::debug!(track_id = id, "dropping speed state of an idle track");
            }
            keep
        });
    }
}

/// The ground point of an image point and its ground covariance per px² of box-edge noise: one
/// px² on the box's bottom edge plus half a px² on its centre column (the mean of two edges),
/// pushed through the homography's Jacobian (central differences). None at or near the horizon.
fn ground_sample(h: &Homography, p_px: [f64; 2]) -> Option<([f64; 2], [[f64; 2]; 2])> {
    let g = h.image_to_world(p_px)?;
    let diff = |d: [f64; 2]| -> Option<[f64; 2]> {
        let a = h.image_to_world([p_px[0] + 0.5 * d[0], p_px[1] + 0.5 * d[1]])?;
        let b = h.image_to_world([p_px[0] - 0.5 * d[0], p_px[1] - 0.5 * d[1]])?;
        Some([a[0] - b[0], a[1] - b[1]])
    };
    let (down, right) = (diff([0.0, 1.0])?, diff([1.0, 0.0])?);
    let cov = |i: usize, j: usize| down[i] * down[j] + 0.5 * right[i] * right[j];
    let c = [[cov(0, 0), cov(0, 1)], [cov(1, 0), cov(1, 1)]];
    let det = c[0][0] * c[1][1] - c[0][1] * c[1][0];
    (c.iter().flatten().all(|v| v.is_finite()) && c[0][0] + c[1][1] > 0.0 && det >= 0.0)
        .then_some((g, c))
}

/// Halves a sample list by keeping every other sample (first and last kept).
fn thin(samples: &mut Vec<Sample>) {
    let last = samples.last().copied();
    let mut i = 0;
    samples.retain(|_| {
        i += 1;
        i % 2 == 1
    });
    if let (Some(last), Some(kept)) = (last, samples.last()) {
        if kept.0 != last.0 {
            samples.push(last);
        }
    }
}
