//! Per-track speed measurement over the zone.
//!
//! Each matched detection of a confirmed track contributes its ground point (bottom centre of the
//! box, where the tyres touch the road: the only point of the box that lies on the calibrated
//! plane) at the frame's capture time, while that point is inside the zone or within the fit
//! margin around it ([`SpeedConfig::fit_margin_share`]). The speed is the mean over the zone, but
//! the samples just before the entry and just after the exit pin down *when* the vehicle crossed
//! the zone edges: a fast vehicle gives few samples inside a short zone, and the fit's error
//! shrinks steeply with the time span it covers. When the point leaves the zone and its margin,
//! or the track ends, the samples are fitted once and dropped. State is kept only for tracks near
//! or inside the zone plus a small "already measured" marker until the track ends; markers and
//! samples of tracks that go quiet without [`SpeedEstimator::end_track`] are dropped after an idle
//! time, and samples per track are capped ([`SpeedEstimator::with_state_limits`]), so memory stays
//! bounded however long the stream runs.

use std::collections::{HashMap, VecDeque};

use super::stitch::Tail;
use super::uncertainty::{student_t_quantile, CalibrationUncertainty};
use super::{fit_zone_motion, GroundSample, Homography, MotionFitOptions, SpeedLines, Zone};
use crate::detect::BBox;

/// One sample of a track near or in the zone.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Capture time, s.
    t_s: f64,
    /// Ground point, m: where the vehicle stands (the box bottom, or the footprint centre with
    /// the cuboid contact model).
    ground_m: [f64; 2],
    /// The box's bottom centre on the ground, m.
    raw_m: [f64; 2],
    /// The box `[x1, y1, x2, y2]`, px.
    box_px: [f64; 4],
    /// Ground covariance per px² of box noise, m²/px².
    cov_m2_per_px2: [[f64; 2]; 2],
    /// The image point it came from, px.
    image_px: [f64; 2],
    /// Inside the zone (not in the margin around it).
    in_zone: bool,
    /// Height of the box, px (big boxes jitter by more pixels).
    box_h_px: f64,
}

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
    /// Where a box says the vehicle stands on the road.
    pub ground_contact: GroundContact,
    /// Samples of the track up to this share of the zone's length outside the zone (before the
    /// entry and after the exit, on the ground) join the `fit`; the speed is still the mean over
    /// the zone. 0 uses in-zone samples only. Boxes touching the image's left, right or bottom
    /// border are not used there (their bottom centre is not the vehicle's), when the image size
    /// is known ([`SpeedEstimator::with_image_size`]).
    pub fit_margin_share: f64,
}

/// Where a box says the vehicle stands (see `contact.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroundContact {
    /// The bottom centre of the box: right for flat vehicles (the demo's sprites), and for
    /// detectors trained to box the ground contact.
    #[default]
    BoxBottom,
    /// The footprint centre of a cuboid of the class's typical size whose image box matches the
    /// detected one: real vehicles seen by a COCO detector. Needs the image size.
    Cuboid,
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
pub(crate) const MIN_PASSAGE_SHARE: f64 = 0.25;
/// A track that leaves the zone with fewer than `min_samples` in-zone samples is still a passage
/// (not box noise flickering across the entry edge) when it has moved at least this share of the
/// zone length on the ground since it entered: a fast vehicle with skipped frames.
const PASSAGE_TRAVEL_SHARE: f64 = 0.5;
/// Vehicles that stood still this long in the zone are measured by their zone-edge crossing
/// times (see `crossing.rs`), s.
const STOPPED_CROSSINGS_S: f64 = 1.0;
/// Relative standard deviation of a vehicle's real size about its class's prior (cuboid contact),
/// when too few whole boxes fit a size.
const SIZE_PRIOR_REL_SD: f64 = 0.2;
/// Relative standard deviation of a fitted size from the vehicle not being a cuboid (rounded
/// fronts, a roof narrower than the body): added to the size fit's own.
const SIZE_SHAPE_REL_SD: f64 = 0.05;
/// The box-noise limit grows with the box: at least `max_noise_px`, and at least this share of
/// the median box height (a detector's box edges on a bus 300 px tall jitter by several px).
const MAX_NOISE_BOX_SHARE: f64 = 0.06;

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
/// Default fit margin around the zone, share of the zone's length.
pub const DEFAULT_FIT_MARGIN_SHARE: f64 = 0.5;
/// Margin samples are left out of a track's fit when they raise its estimated box noise above
/// this multiple of the zone-only fit's (plus 0.25 px): they are not as good as the zone's.
const MARGIN_NOISE_RATIO: f64 = 1.5;
/// Most margin samples kept for a track that has not entered the zone (a vehicle waiting beside
/// it); the oldest go first.
const MAX_APPROACH_SAMPLES: usize = 256;

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
            fit_margin_share: DEFAULT_FIT_MARGIN_SHARE,
            ground_contact: GroundContact::BoxBottom,
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
    /// Samples used by the fit (in the zone and its margin, outliers removed).
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
    /// between the fitted zone entry and exit), `"crossings"` (zone length over the time between
    /// the zone-edge crossings, each from a local fit: a vehicle that stopped or went
    /// stop-and-go in the zone) or `"lines"` (time between two lines; then
    /// `t_enter_s`/`t_exit_s` are the crossing times and `distance_m` the configured distance).
    pub method: &'static str,
    /// Time the vehicle stood still (slower than 0.5 m/s) in the zone, s.
    pub stopped_s: f64,
    /// Earlier tracks of the same vehicle, lost in the zone and joined to this one, oldest first.
    pub joined_track_ids: Vec<u64>,
}

/// What one track's passage through the zone gave: one verdict per vehicle, with or without a
/// speed.
#[derive(Debug, Clone, PartialEq)]
pub enum Passage {
    /// A speed.
    Measured(SpeedMeasurement),
    /// The vehicle passed through the zone, but its detections give no trustworthy speed. It is
    /// still a vehicle: counted, stored and published without a speed.
    Unmeasured(Unmeasured),
}

impl Passage {
    /// The measurement, when there is a speed.
    pub fn measured(self) -> Option<SpeedMeasurement> {
        match self {
            Passage::Measured(m) => Some(m),
            Passage::Unmeasured(_) => None,
        }
    }

    /// Tracker id.
    pub fn track_id(&self) -> u64 {
        match self {
            Passage::Measured(m) => m.track_id,
            Passage::Unmeasured(u) => u.track_id,
        }
    }

    /// Earlier tracks of the same vehicle joined to this one (see `stitch.rs`), oldest first.
    pub fn joined_track_ids(&self) -> &[u64] {
        match self {
            Passage::Measured(m) => &m.joined_track_ids,
            Passage::Unmeasured(u) => &u.joined_track_ids,
        }
    }

    fn set_joined_track_ids(&mut self, ids: Vec<u64>) {
        match self {
            Passage::Measured(m) => m.joined_track_ids = ids,
            Passage::Unmeasured(u) => u.joined_track_ids = ids,
        }
    }
}

/// A passage without a speed.
#[derive(Debug, Clone, PartialEq)]
pub struct Unmeasured {
    /// Tracker id.
    pub track_id: u64,
    /// Class as reported by the tracker.
    pub class: String,
    /// Capture time of the first in-zone sample, s.
    pub t_enter_s: f64,
    /// Capture time of the last in-zone sample, s.
    pub t_exit_s: f64,
    /// Samples in the zone.
    pub samples: u32,
    /// Why there is no speed.
    pub reason: NoSpeedReason,
    /// Earlier tracks of the same vehicle, lost in the zone and joined to this one, oldest first.
    pub joined_track_ids: Vec<u64>,
}

/// Why a passage has no speed. The names are the event's `reason` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSpeedReason {
    /// Too few detections for a fit (a fast vehicle through a short zone with skipped frames).
    TooFewSamples,
    /// The detections scatter too much about any motion for one vehicle (box noise beyond the
    /// limit, or boxes of two vehicles).
    Scatter,
    /// The fitted speed is above `max_speed_kmh`.
    Implausible,
}

impl NoSpeedReason {
    /// The name used in events: `too_few_samples`, `scatter`, `implausible_speed`.
    pub fn as_str(self) -> &'static str {
        match self {
            NoSpeedReason::TooFewSamples => "too_few_samples",
            NoSpeedReason::Scatter => "scatter",
            NoSpeedReason::Implausible => "implausible_speed",
        }
    }
}

/// What one box says about a track, for the zone state machine of [`SpeedEstimator::observe`].
struct Seen<'a> {
    class: &'a str,
    t_s: f64,
    sample: Option<Sample>,
    in_zone: bool,
    /// Outside the zone, within its margin, from a whole box.
    near: bool,
    /// The box touches the frame's border.
    cut: bool,
}

/// A track's next zone state after one box.
enum Step {
    /// Keep this state.
    Next(TrackZone),
    /// Drop the track's state (away from the zone, nothing worth keeping).
    Forget,
    /// The passage is over: measure this `Inside` state.
    Measure(TrackZone),
}

/// Where a track stands with respect to the zone.
#[derive(Debug)]
enum TrackZone {
    /// Ground point in the margin before the zone: its samples, kept in case it enters.
    Approaching {
        samples: VecDeque<Sample>,
        last_seen_t_s: f64,
    },
    /// Entered the zone; collecting samples until it leaves the zone and its margin (`left`: it
    /// has left the zone and is in the margin after it).
    Inside {
        class: String,
        samples: Vec<Sample>,
        in_zone: usize,
        left: bool,
        last_seen_t_s: f64,
    },
    /// Measured, or the fit was rejected: nothing more until the track ends.
    Done { last_seen_t_s: f64 },
}

impl TrackZone {
    fn last_seen_t_s(&self) -> f64 {
        match self {
            TrackZone::Approaching { last_seen_t_s, .. }
            | TrackZone::Inside { last_seen_t_s, .. }
            | TrackZone::Done { last_seen_t_s } => *last_seen_t_s,
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
    /// Fit margin around the zone on the ground, m (0: none).
    margin_m: f64,
    /// The zone's length on the ground, m (0 when unknown).
    zone_len_m: f64,
    /// The zone's long axis on the ground (unit vector): the road's direction, for tracks whose
    /// own direction is not known yet.
    zone_axis_m: [f64; 2],
    /// The camera recovered from the calibration, when the cuboid contact model is on and the
    /// image size is known.
    camera: Option<super::GroundCamera>,
    /// Frame size, px, when known: margin boxes touching its border are not used.
    image_size_px: Option<(f64, f64)>,
    calibration: Option<CalibrationUncertainty>,
    cfg: SpeedConfig,
    max_samples: usize,
    max_idle_s: f64,
    tracks: HashMap<u64, TrackZone>,
    /// Tracks that ended inside the zone, held for a while in case a new track picks their
    /// vehicle up again (see `stitch.rs`).
    fragments: Vec<Fragment>,
    /// Per live track, the earlier tracks lost in the zone that it continues.
    joined: HashMap<u64, Vec<u64>>,
    /// How long the tracker keeps a still track without detections, s: a vehicle lost while
    /// standing still may be picked up again that much later.
    still_track_age_s: f64,
    latest_t_s: f64,
    last_sweep_t_s: f64,
}

/// A track that ended inside the zone, waiting for its continuation.
#[derive(Debug)]
struct Fragment {
    track_id: u64,
    tail: Tail,
    /// Its `Inside` state.
    state: TrackZone,
    /// The earlier tracks it continues itself.
    joined: Vec<u64>,
}

/// Time a lost track is held beyond the longest gap its continuation may leave, s: the
/// continuation's first boxes reach the estimator only once the tracker confirms it.
const FRAGMENT_CONFIRM_S: f64 = 1.0;
/// Most fragments held at once (each bounded like a track's state).
const MAX_FRAGMENTS: usize = 64;

impl SpeedEstimator {
    /// An estimator for one camera's calibration and zone.
    pub fn new(h: Homography, zone: Zone, cfg: SpeedConfig) -> Self {
        let mut est = Self {
            h,
            zone,
            zone_ground_m: None,
            margin_m: 0.0,
            zone_len_m: 0.0,
            zone_axis_m: [1.0, 0.0],
            camera: None,
            image_size_px: None,
            calibration: None,
            cfg,
            max_samples: DEFAULT_MAX_SAMPLES,
            max_idle_s: DEFAULT_MAX_IDLE_S,
            tracks: HashMap::new(),
            fragments: Vec::new(),
            joined: HashMap::new(),
            still_track_age_s: crate::track::TrackerConfig::default().stationary_max_age_s,
            latest_t_s: f64::NEG_INFINITY,
            last_sweep_t_s: f64::NEG_INFINITY,
        };
        est.derive_zone();
        est
    }

    /// Derives the zone's ground polygon, margin, length and axis from the zone, the calibration
    /// and the settings.
    fn derive_zone(&mut self) {
        let (h, zone) = (&self.h, &self.zone);
        self.zone_ground_m = zone
            .polygon_px()
            .iter()
            .map(|p| h.image_to_world(*p))
            .collect::<Option<Vec<_>>>();
        self.margin_m = margin_m(h, zone, &self.cfg);
        self.zone_len_m = zone.length_m(h).unwrap_or(0.0);
        self.zone_axis_m = self
            .zone_ground_m
            .as_deref()
            .map_or([1.0, 0.0], super::principal_axis);
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

    /// Sets how long the tracker keeps a still track without detections
    /// (`tracker.stationary_max_age_s`), s: a fragment of a vehicle lost while standing still is
    /// held that much longer for its continuation.
    pub fn with_still_track_age(mut self, still_track_age_s: f64) -> Self {
        self.still_track_age_s = still_track_age_s;
        self
    }

    /// Sets the frame size, px: boxes in the fit margin that touch the left, right or bottom
    /// border are cut by it, so their bottom centre is not the vehicle's and they are not used.
    pub fn with_image_size(mut self, width_px: u32, height_px: u32) -> Self {
        self.set_image_size(width_px, height_px);
        self
    }

    /// See [`SpeedEstimator::with_image_size`] (a source's frame size may change on reconnect).
    pub fn set_image_size(&mut self, width_px: u32, height_px: u32) {
        let size = Some((f64::from(width_px), f64::from(height_px)));
        if size != self.image_size_px {
            self.image_size_px = size;
            self.update_camera();
        }
    }

    /// Recovers the camera for the cuboid contact model (see `contact.rs`); without one (box
    /// bottom model, unknown image size, a homography no pinhole camera gives) box bottoms are
    /// used as they are.
    fn update_camera(&mut self) {
        self.camera = match (self.cfg.ground_contact, self.image_size_px) {
            (GroundContact::Cuboid, Some((w, h))) => self.zone_ground_m.as_deref().and_then(|p| {
                let n = p.len() as f64;
                let c = p
                    .iter()
                    .fold([0.0, 0.0], |a, q| [a[0] + q[0] / n, a[1] + q[1] / n]);
                let cam = super::GroundCamera::from_homography(self.h.inverse_matrix(), w, h, c);
                if cam.is_none() {
                    tracing::warn!(
                        "the calibration gives no pinhole camera for a {w}x{h} image: \
                         ground contact falls back to the box bottom"
                    );
                }
                cam
            }),
            _ => None,
        };
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
        self.zone = zone;
        self.cfg = cfg;
        self.derive_zone();
        self.update_camera();
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
        self.tracks.len() + self.fragments.len()
    }

    /// Whether the ended track `track_id` is held as a fragment, waiting for its continuation.
    pub fn holds_fragment(&self, track_id: u64) -> bool {
        self.fragments.iter().any(|f| f.track_id == track_id)
    }

    /// Feeds a matched detection of a confirmed track at frame time `t_s`. Returns the passage
    /// (with or without a speed) when the track's ground point has just left the zone and its
    /// margin (it was inside before), once per track. Leaving with fewer than `min_samples`
    /// samples, not far from where it entered, is not a passage (box noise flickering across the
    /// zone edge): those samples become margin samples and the track may enter again.
    pub fn observe(
        &mut self,
        track_id: u64,
        class: &str,
        t_s: f64,
        bbox: &BBox,
    ) -> Option<Passage> {
        if !t_s.is_finite() {
            return None;
        }
        self.latest_t_s = self.latest_t_s.max(t_s);
        self.sweep();
        let (sample, in_zone) = self.sample(track_id, class, t_s, bbox);
        // Outside the zone, a sample counts only within the margin and from a whole box.
        let cut = self.cut_by_frame(bbox);
        let near = !in_zone && !cut && sample.is_some_and(|s| self.in_margin(s.ground_m));
        let seen = Seen {
            class,
            t_s,
            sample,
            in_zone,
            near,
            cut,
        };
        let step = match self.tracks.remove(&track_id) {
            Some(TrackZone::Done { last_seen_t_s }) => Step::Next(TrackZone::Done {
                last_seen_t_s: last_seen_t_s.max(t_s),
            }),
            None => match self.adopt(track_id, &seen) {
                Some(lost) => self.inside(lost, &seen),
                None => self.approach(Default::default(), &seen),
            },
            Some(TrackZone::Approaching { samples, .. }) => self.approach(samples, &seen),
            Some(inside) => self.inside(inside, &seen),
        };
        match step {
            Step::Next(zone) => {
                self.tracks.insert(track_id, zone);
                None
            }
            Step::Forget => None,
            Step::Measure(inside) => {
                let last_seen_t_s = inside.last_seen_t_s();
                self.tracks
                    .insert(track_id, TrackZone::Done { last_seen_t_s });
                let joined = self.joined.remove(&track_id).unwrap_or_default();
                let (inside, joined) = self.claim_predecessor(track_id, inside, joined);
                self.measure_joined(track_id, inside, joined)
            }
        }
    }

    /// A track not yet in the zone: it enters, or its margin sample is kept, or (away from the
    /// zone) it is forgotten.
    fn approach(&self, mut samples: VecDeque<Sample>, seen: &Seen<'_>) -> Step {
        if seen.in_zone {
            let mut samples: Vec<Sample> = samples.into();
            samples.extend(seen.sample);
            return Step::Next(TrackZone::Inside {
                class: seen.class.to_owned(),
                samples,
                in_zone: 1,
                left: false,
                last_seen_t_s: seen.t_s,
            });
        }
        match (seen.sample, seen.near) {
            (Some(sample), true) => {
                if samples.len() >= MAX_APPROACH_SAMPLES {
                    samples.pop_front();
                }
                samples.push_back(sample);
            }
            // A cut box says nothing about where the vehicle is: keep what came before.
            _ if seen.cut && !samples.is_empty() => {}
            // Away from the zone: nothing to keep.
            _ => return Step::Forget,
        }
        Step::Next(TrackZone::Approaching {
            samples,
            last_seen_t_s: seen.t_s,
        })
    }

    /// A track that entered the zone: it collects samples until it has left the zone and the
    /// margin after it, then is measured; leaving with too few samples near where it entered is
    /// box noise flickering across the edge, not a passage.
    fn inside(&self, state: TrackZone, seen: &Seen<'_>) -> Step {
        let TrackZone::Inside {
            class: held_class,
            mut samples,
            in_zone: mut count,
            left,
            last_seen_t_s,
        } = state
        else {
            return Step::Next(state);
        };
        let t_s = seen.t_s;
        let min_samples = self.cfg.min_samples as usize;
        let last_seen_t_s = last_seen_t_s.max(t_s);
        // After the exit, the margin is collected for as long as the vehicle took through the
        // zone times the margin share (the margin's length at constant speed), so a vehicle that
        // stops beyond the zone is measured without waiting for it.
        let margin_over = left
            && zone_span_s(&samples)
                .is_some_and(|(t0, t1)| t_s - t1 > self.cfg.fit_margin_share * (t1 - t0));
        if !(seen.in_zone || seen.near) || margin_over {
            if count < min_samples && !self.travelled(&samples) {
                // The flicker, and now away from the zone: forget it.
                return Step::Forget;
            }
            return Step::Measure(TrackZone::Inside {
                class: held_class,
                samples,
                in_zone: count,
                left,
                last_seen_t_s,
            });
        }
        let class = if seen.in_zone && held_class != seen.class {
            seen.class.to_owned()
        } else {
            held_class
        };
        samples.extend(seen.sample);
        count += usize::from(seen.in_zone && seen.sample.is_some());
        if samples.len() > self.max_samples {
            thin(&mut samples);
            count = samples.iter().filter(|s| s.in_zone).count();
        }
        // Left the zone into the margin: collect on until it leaves that too.
        let left = left || !seen.in_zone;
        if !left || count >= min_samples || self.travelled(&samples) {
            return Step::Next(TrackZone::Inside {
                class,
                samples,
                in_zone: count,
                left,
                last_seen_t_s,
            });
        }
        // Too few in-zone samples: a box-noise flicker across the zone edge on entry (or a brief
        // graze of the zone). Its samples become margin samples, so that the real passage can
        // still be measured.
        let samples = samples
            .into_iter()
            .map(|s| Sample {
                in_zone: false,
                ..s
            })
            .rev()
            .take(MAX_APPROACH_SAMPLES)
            .rev()
            .collect();
        Step::Next(TrackZone::Approaching {
            samples,
            last_seen_t_s,
        })
    }

    /// The sample of one box, and whether it lies in the zone: the box's bottom centre on the
    /// ground, or with the cuboid contact model the footprint centre (see `contact.rs`), which
    /// is then also what must lie in the zone (on the ground).
    fn sample(&self, track_id: u64, class: &str, t_s: f64, bbox: &BBox) -> (Option<Sample>, bool) {
        let (gx, gy) = bbox.bottom_center();
        let image_px = [gx as f64, gy as f64];
        let Some((raw_m, cov)) = ground_sample(&self.h, image_px) else {
            return (None, self.zone.contains(image_px));
        };
        let footprint = self.camera.as_ref().and_then(|cam| {
            let axis = self.track_axis(track_id, raw_m);
            let b = [bbox.x1, bbox.y1, bbox.x2, bbox.y2].map(f64::from);
            cam.footprint_centre(b, axis, super::class_size(class), raw_m)
        });
        let (ground_m, in_zone) = match (footprint, self.zone_ground_m.as_deref()) {
            (Some(g), Some(poly)) => (g, super::point_in_polygon(poly, g)),
            _ => (raw_m, self.zone.contains(image_px)),
        };
        let sample = Sample {
            t_s,
            ground_m,
            raw_m,
            box_px: [bbox.x1, bbox.y1, bbox.x2, bbox.y2].map(f64::from),
            cov_m2_per_px2: cov,
            image_px,
            in_zone,
            box_h_px: f64::from(bbox.y2 - bbox.y1),
        };
        (Some(sample), in_zone)
    }

    /// The direction of travel of a track on the ground, for its cuboid: from its first box
    /// bottom to this one once they are 3 m apart, else the zone's long axis.
    fn track_axis(&self, track_id: u64, raw_m: [f64; 2]) -> [f64; 2] {
        let first = match self.tracks.get(&track_id) {
            Some(TrackZone::Approaching { samples, .. }) => samples.front().map(|s| s.raw_m),
            Some(TrackZone::Inside { samples, .. }) => samples.first().map(|s| s.raw_m),
            _ => None,
        };
        if let Some(f) = first {
            let d = [raw_m[0] - f[0], raw_m[1] - f[1]];
            let n = d[0].hypot(d[1]);
            if n > 3.0 {
                return [d[0] / n, d[1] / n];
            }
        }
        self.zone_axis_m
    }

    /// Whether the samples' vehicle moved at least [`PASSAGE_TRAVEL_SHARE`] of the zone length
    /// from its first in-zone sample to its last sample: a passage, however few its samples.
    fn travelled(&self, samples: &[Sample]) -> bool {
        let first = samples.iter().find(|s| s.in_zone);
        match (first, samples.last()) {
            (Some(a), Some(b)) if self.zone_len_m > 0.0 => {
                let d = (b.ground_m[0] - a.ground_m[0]).hypot(b.ground_m[1] - a.ground_m[1]);
                d >= PASSAGE_TRAVEL_SHARE * self.zone_len_m
            }
            _ => false,
        }
    }

    /// Whether a ground point outside the zone lies within the fit margin.
    fn in_margin(&self, ground_m: [f64; 2]) -> bool {
        self.margin_m > 0.0
            && self
                .zone_ground_m
                .as_deref()
                .is_some_and(|poly| super::polygon_edge_distance(poly, ground_m) <= self.margin_m)
    }

    /// Whether the box touches the frame's left, right or bottom border (so its bottom centre is
    /// not the vehicle's); false when the frame size is unknown.
    fn cut_by_frame(&self, bbox: &BBox) -> bool {
        self.image_size_px.is_some_and(|(w, h)| {
            f64::from(bbox.x1) <= 1.0
                || f64::from(bbox.x2) >= w - 1.0
                || f64::from(bbox.y2) >= h - 1.0
        })
    }

    /// Whether the box `[x1, y1, x2, y2]` comes within `margin_px` of any border of the frame.
    fn near_border(&self, b: [f64; 4], margin_px: f64) -> bool {
        self.image_size_px.is_some_and(|(w, h)| {
            b[0] <= margin_px || b[1] <= margin_px || b[2] >= w - margin_px || b[3] >= h - margin_px
        })
    }

    /// The track ended: measures it if it was in the zone and not measured yet, and frees its
    /// state. A track that ended inside the zone is instead joined to a younger track that
    /// continues it, or held for one ([`SpeedEstimator::expire`] measures it if none comes).
    pub fn end_track(&mut self, track_id: u64) -> Option<Passage> {
        let state = self.tracks.remove(&track_id)?;
        let joined = self.joined.remove(&track_id).unwrap_or_default();
        let (state, mut joined) = self.claim_predecessor(track_id, state, joined);
        let Some(tail) = self.lost_in_zone(&state) else {
            return self.measure_joined(track_id, state, joined);
        };
        if let Some(next) = self.successor(track_id, &tail) {
            tracing::debug!(
                track_id,
                continued_by = next,
                "track lost in the zone joins its continuation"
            );
            if let Some(later) = self.tracks.remove(&next) {
                self.tracks.insert(next, join(state, later));
                joined.push(track_id);
                self.joined.insert(next, joined);
            }
            return None;
        }
        tracing::debug!(
            track_id,
            ?tail,
            "track lost in the zone: held for a continuation"
        );
        let fragment = Fragment {
            track_id,
            tail,
            state,
            joined,
        };
        self.fragments.push(fragment);
        None
    }

    /// A passage about to be measured that began inside the zone may continue a track that was
    /// lost there and that the tracker has not ended yet (it waits `max_age_s` for it, and a fast
    /// vehicle's continuation can leave the zone first): that track's samples join the passage
    /// and it is marked measured. Only a track not seen since this one began qualifies, so a
    /// vehicle still in view is never taken.
    fn claim_predecessor(
        &mut self,
        track_id: u64,
        state: TrackZone,
        mut joined: Vec<u64>,
    ) -> (TrackZone, Vec<u64>) {
        let first = match &state {
            TrackZone::Inside { samples, .. } => samples.first().copied(),
            _ => None,
        };
        let Some(first) = first.filter(|s| s.in_zone) else {
            return (state, joined);
        };
        let still = self.still_track_age_s;
        let best = self
            .tracks
            .iter()
            .filter(|(id, _)| **id != track_id)
            .filter_map(|(id, other)| {
                let tail = self.lost_in_zone(other)?;
                let cost = tail.cost(first.t_s, first.ground_m, still)?;
                Some((*id, cost))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let Some((earlier, _)) = best else {
            return (state, joined);
        };
        let Some(lost) = self.tracks.remove(&earlier) else {
            return (state, joined);
        };
        tracing::debug!(
            track_id = earlier,
            continued_by = track_id,
            "a passage continues a track lost in the zone"
        );
        let last_seen_t_s = lost.last_seen_t_s();
        self.tracks
            .insert(earlier, TrackZone::Done { last_seen_t_s });
        let mut ids = self.joined.remove(&earlier).unwrap_or_default();
        ids.push(earlier);
        ids.append(&mut joined);
        (join(lost, state), ids)
    }

    /// [`Self::measure`], with the ids of the earlier tracks the passage joins.
    fn measure_joined(&self, track_id: u64, state: TrackZone, joined: Vec<u64>) -> Option<Passage> {
        let mut p = self.measure(track_id, state)?;
        p.set_joined_track_ids(joined);
        Some(p)
    }

    /// Measures the fragments whose continuation can no longer come by stream time `t_s`.
    pub fn expire(&mut self, t_s: f64) -> Vec<Passage> {
        if self.fragments.is_empty() {
            return Vec::new();
        }
        let still = self.still_track_age_s;
        // Beyond the cap, the oldest are due at once.
        let over = self.fragments.len().saturating_sub(MAX_FRAGMENTS);
        let mut due = Vec::new();
        for (i, f) in std::mem::take(&mut self.fragments).into_iter().enumerate() {
            let late = t_s - f.tail.t_s > f.tail.max_gap_s(still) + FRAGMENT_CONFIRM_S;
            if i < over || late {
                due.push(f);
            } else {
                self.fragments.push(f);
            }
        }
        due.into_iter()
            .filter_map(|f| self.measure_joined(f.track_id, f.state, f.joined))
            .collect()
    }

    /// End of stream: measures every held fragment.
    pub fn flush(&mut self) -> Vec<Passage> {
        std::mem::take(&mut self.fragments)
            .into_iter()
            .filter_map(|f| self.measure_joined(f.track_id, f.state, f.joined))
            .collect()
    }

    /// The tail of a track that vanished inside the zone (it had entered, not left, and moved
    /// there with at least `min_samples` samples: a vehicle, not a flicker): where it was
    /// heading. None for any other state.
    fn lost_in_zone(&self, state: &TrackZone) -> Option<Tail> {
        let TrackZone::Inside {
            samples,
            in_zone,
            left: false,
            ..
        } = state
        else {
            return None;
        };
        if *in_zone < self.cfg.min_samples as usize {
            return None;
        }
        let points: Vec<(f64, [f64; 2])> = samples.iter().map(|s| (s.t_s, s.ground_m)).collect();
        Tail::of(&points, self.zone_axis_m).filter(|t| t.directed)
    }

    /// The live track, begun after `tail`, whose first sample continues it best.
    fn successor(&self, track_id: u64, tail: &Tail) -> Option<u64> {
        let still = self.still_track_age_s;
        self.tracks
            .iter()
            .filter(|(id, _)| **id != track_id)
            .filter_map(|(id, state)| {
                let first = match state {
                    TrackZone::Approaching { samples, .. } => samples.front(),
                    TrackZone::Inside { samples, .. } => samples.first(),
                    TrackZone::Done { .. } => None,
                }?;
                let cost = tail.cost(first.t_s, first.ground_m, still)?;
                Some((*id, cost))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
            .map(|(id, _)| id)
    }

    /// A new track's first box: the state of the held fragment it continues, if any (removed
    /// from the held ones).
    fn adopt(&mut self, track_id: u64, seen: &Seen<'_>) -> Option<TrackZone> {
        let sample = seen.sample?;
        if self.fragments.is_empty() || !(seen.in_zone || seen.near) {
            return None;
        }
        let still = self.still_track_age_s;
        let best = self
            .fragments
            .iter()
            .enumerate()
            .filter_map(|(i, f)| Some((i, f.tail.cost(sample.t_s, sample.ground_m, still)?)))
            .min_by(|a, b| a.1.total_cmp(&b.1))?;
        let mut f = self.fragments.remove(best.0);
        tracing::debug!(
            track_id = f.track_id,
            continued_by = track_id,
            "a new track continues a track lost in the zone"
        );
        f.joined.push(f.track_id);
        self.joined.insert(track_id, f.joined);
        Some(f.state)
    }

    /// Fits the samples of a track that was inside the zone: a passage with a speed, a passage
    /// without one (and why), or None when the track was no passage (too few samples near where
    /// it entered, or a box that stayed put: a parked vehicle, a false detection).
    fn measure(&self, track_id: u64, state: TrackZone) -> Option<Passage> {
        let TrackZone::Inside {
            class,
            mut samples,
            mut in_zone,
            ..
        } = state
        else {
            return None;
        };
        let size = self.refoot(&mut samples, &class);
        if size.is_some() {
            in_zone = samples.iter().filter(|s| s.in_zone).count();
        }
        let (t0, t1) = zone_span_s(&samples)?;
        let min_samples = self.cfg.min_samples as usize;
        let unmeasured = |reason: NoSpeedReason| {
            tracing::debug!(
                track_id,
                reason = reason.as_str(),
                "passage without a speed"
            );
            Some(Passage::Unmeasured(Unmeasured {
                track_id,
                class: class.clone(),
                t_enter_s: t0,
                t_exit_s: t1,
                samples: u32::try_from(in_zone).unwrap_or(u32::MAX),
                reason,
                joined_track_ids: Vec::new(),
            }))
        };
        if !self.is_passage(track_id, &samples, in_zone) {
            return None;
        }
        if let SpeedMethod::Lines(lines) = &self.cfg.method {
            // The image points themselves: the lines method needs no calibration.
            let px: Vec<(f64, [f64; 2])> = samples
                .iter()
                .filter(|s| s.in_zone)
                .map(|s| (s.t_s, s.image_px))
                .collect();
            let max_kmh = self.cfg.max_speed_kmh;
            return match super::lines::measure_lines(lines, track_id, class.clone(), &px, max_kmh) {
                Some(m) => Some(Passage::Measured(m)),
                None => unmeasured(NoSpeedReason::TooFewSamples),
            };
        }
        if !self.moves_through(track_id, &samples) {
            return None;
        }
        // Margin samples only from as long before the entry and after the exit as the margin
        // takes at the vehicle's pace through the zone: a vehicle that waited beside the zone
        // (a queue, a red light) did not move at that pace then.
        let pad_s = self.cfg.fit_margin_share.max(0.0) * (t1 - t0);
        let margin_sample = |s: &Sample| !s.in_zone && (t0 - pad_s..=t1 + pad_s).contains(&s.t_s);
        let ground_of = |use_margin: bool| -> Vec<GroundSample> {
            samples
                .iter()
                .filter(|s| s.in_zone || (use_margin && margin_sample(s)))
                .map(|s| GroundSample {
                    t_s: s.t_s,
                    ground_m: s.ground_m,
                    cov_m2_per_px2: s.cov_m2_per_px2,
                })
                .collect()
        };
        let with_margin = samples.iter().any(margin_sample);
        if in_zone + samples.iter().filter(|s| margin_sample(s)).count() < min_samples {
            return unmeasured(NoSpeedReason::TooFewSamples);
        }
        let Some((fit, ground)) = self.fit_passage(track_id, with_margin, ground_of) else {
            return unmeasured(NoSpeedReason::TooFewSamples);
        };
        let max_noise_px = self.max_noise_px(&samples);
        let noise_of = |f: &super::MotionFit| f.noise_px.max(f.lateral_noise_px);
        // A vehicle that stood in the zone, or whose motion the one-model fit does not follow
        // (stop-and-go), is measured by its zone-edge crossing times instead.
        let stopped_s = super::crossing::stopped_s(&ground, fit.direction, fit.origin_m, t0, t1);
        let (fit, method, stopped_s) =
            if stopped_s >= STOPPED_CROSSINGS_S || noise_of(&fit) > max_noise_px {
                // The samples on both sides of each zone edge: the margin's too.
                let around = ground_of(true);
                match self.zone_ground_m.as_deref().and_then(|z| {
                    super::crossing::fit_zone_crossings(&around, z, fit.direction, fit.origin_m)
                }) {
                    Some(c) => (c.fit, "crossings", c.stopped_s),
                    None => (fit, "fit", stopped_s),
                }
            } else {
                (fit, "fit", stopped_s)
            };
        let speed_kmh = fit.speed_m_s * 3.6;
        let noise_px = noise_of(&fit);
        if noise_px > max_noise_px {
            tracing::debug!(
                track_id,
                noise_px,
                max_noise_px,
                "no speed: samples scatter too much for one vehicle"
            );
            return unmeasured(NoSpeedReason::Scatter);
        }
        if speed_kmh > self.cfg.max_speed_kmh {
            tracing::debug!(
                track_id,
                speed_kmh,
                max_speed_kmh = self.cfg.max_speed_kmh,
                "no speed: implausible"
            );
            return unmeasured(NoSpeedReason::Implausible);
        }
        let (t_enter_s, t_exit_s) = (t0, t1);
        let half_kmh = self.half_interval_kmh(&fit, &samples, size, speed_kmh);
        Some(Passage::Measured(SpeedMeasurement {
            track_id,
            class,
            speed_kmh,
            speed_ci95_kmh: [(speed_kmh - half_kmh).max(0.0), speed_kmh + half_kmh],
            samples: u32::try_from(fit.inliers).unwrap_or(u32::MAX),
            t_enter_s,
            t_exit_s,
            distance_m: fit.speed_m_s * (t_exit_s - t_enter_s),
            residual_rms_m: fit.residual_rms_m,
            method,
            stopped_s,
            joined_track_ids: Vec::new(),
        }))
    }

    /// With the cuboid contact model, solves every sample's footprint again with the passage's
    /// final class and its direction of travel over the whole passage: while the track was
    /// young its class (a bus first voted a truck) and its direction (the zone's axis until it
    /// had moved 3 m) were guesses, and footprints solved with different sizes or axes along one
    /// passage scatter and bias the fit. The size is fitted to the boxes
    /// ([`super::GroundCamera::fit_size`]) with the class's as a prior. Returns the size used and
    /// its relative uncertainty, or None without the cuboid model.
    fn refoot(&self, samples: &mut [Sample], class: &str) -> Option<(super::VehicleSize, f64)> {
        let (Some(cam), Some(poly)) = (&self.camera, self.zone_ground_m.as_deref()) else {
            return None;
        };
        let axis = self.travel_axis(samples)?;
        let prior = super::class_size(class);
        // Boxes near the frame's border may be cut by it, give or take the box noise: their
        // width or height is not the vehicle's.
        let whole: Vec<&Sample> = samples
            .iter()
            .filter(|s| !self.near_border(s.box_px, (0.05 * s.box_h_px).max(4.0)))
            .collect();
        let boxes: Vec<[f64; 4]> = whole.iter().map(|s| s.box_px).collect();
        let starts: Vec<[f64; 2]> = whole.iter().map(|s| s.raw_m).collect();
        let fitted = cam.fit_size(&boxes, &starts, axis, prior);
        tracing::debug!(
            class,
            ?fitted,
            boxes = boxes.len(),
            "vehicle size fitted to its boxes"
        );
        let (size, rel_sd) = match fitted {
            Some(f) => (
                f.size,
                f.log_sd
                    .iter()
                    .fold(0.0f64, |a, &b| a.max(b))
                    .hypot(SIZE_SHAPE_REL_SD),
            ),
            None => (prior, SIZE_PRIOR_REL_SD),
        };
        // Twice: the footprints solved along the first axis give a better one (the first
        // samples' footprints came from the young track's guesses).
        let mut axis = axis;
        for round in 0..2 {
            if round == 1 {
                axis = self.travel_axis(samples).unwrap_or(axis);
            }
            for s in samples.iter_mut() {
                if let Some(g) = cam.footprint_centre(s.box_px, axis, size, s.raw_m) {
                    s.ground_m = g;
                    s.in_zone = super::point_in_polygon(poly, g);
                }
            }
        }
        Some((size, rel_sd))
    }

    /// The direction of travel of the samples' footprints (not of the box bottoms, which drift
    /// sideways as the perspective changes): their principal axis, pointing from the first to
    /// the last; the zone's axis when they moved less than 3 m. None without samples.
    fn travel_axis(&self, samples: &[Sample]) -> Option<[f64; 2]> {
        let (first, last) = (samples.first()?, samples.last()?);
        let d = [
            last.ground_m[0] - first.ground_m[0],
            last.ground_m[1] - first.ground_m[1],
        ];
        if d[0].hypot(d[1]) <= 3.0 {
            return Some(self.zone_axis_m);
        }
        let points: Vec<[f64; 2]> = samples.iter().map(|s| s.ground_m).collect();
        let a = super::principal_axis(&points);
        Some(if a[0] * d[0] + a[1] * d[1] < 0.0 {
            [-a[0], -a[1]]
        } else {
            a
        })
    }

    /// Whether a track's samples are a passage: enough of them in the zone, or it moved far
    /// enough since it entered (a fast vehicle with skipped frames).
    fn is_passage(&self, track_id: u64, samples: &[Sample], in_zone: usize) -> bool {
        let min_samples = self.cfg.min_samples as usize;
        let passage = in_zone >= min_samples || self.travelled(samples);
        if !passage {
            tracing::debug!(
                track_id,
                samples = in_zone,
                min_samples,
                "no passage: too few samples in the zone"
            );
        }
        passage
    }

    /// Whether the samples move through the zone: a box that stays put (a false detection on a
    /// sign or a shadow, a parked vehicle) is no passage however many samples it has.
    fn moves_through(&self, track_id: u64, samples: &[Sample]) -> bool {
        let zone_samples = || samples.iter().filter(|s| s.in_zone);
        let span_m = match (zone_samples().next(), zone_samples().next_back()) {
            (Some(a), Some(b)) => {
                (b.ground_m[0] - a.ground_m[0]).hypot(b.ground_m[1] - a.ground_m[1])
            }
            _ => 0.0,
        };
        let min_span_m = MIN_PASSAGE_SHARE * self.zone_len_m;
        if span_m < min_span_m && !self.travelled(samples) {
            tracing::debug!(
                track_id,
                span_m,
                min_span_m,
                "no passage: the samples cover too little of the zone"
            );
            return false;
        }
        true
    }

    /// Half width of the 95% interval, km/h: the fit's statistical error combined (root sum of
    /// squares: they are independent) with the calibration's, the detector's systematic box
    /// offset and the cuboid size prior's.
    fn half_interval_kmh(
        &self,
        fit: &super::MotionFit,
        samples: &[Sample],
        size: Option<(super::VehicleSize, f64)>,
        speed_kmh: f64,
    ) -> f64 {
        let fit_half_kmh = student_t_quantile(0.975, fit.dof) * fit.speed_se_m_s * 3.6;
        let cal_half_kmh = self.calibration_rel_sd(fit).map_or(0.0, |(rel_sd, dof)| {
            student_t_quantile(0.975, dof) * rel_sd * speed_kmh
        });
        let box_half_kmh = self
            .box_bias_rel_sd(fit)
            .map_or(0.0, |rel_sd| 1.96 * rel_sd * speed_kmh);
        let size_half_kmh = size
            .and_then(|(size, rel_sd)| self.size_rel_sd(samples, size, rel_sd, fit))
            .map_or(0.0, |rel_sd| 1.96 * rel_sd * speed_kmh);
        fit_half_kmh
            .hypot(cal_half_kmh)
            .hypot(box_half_kmh)
            .hypot(size_half_kmh)
    }

    /// The whole-passage motion fit, with or without the margin samples (the margin's boxes must
    /// agree with the zone's: outside the zone a real detector's boxes can be worse, a vehicle
    /// partly hidden by another or by the frame's edge, the far end where boxes are a few pixels
    /// tall; when they scatter clearly more than the zone's own, the zone's samples alone are
    /// used). Returns the fit and the samples it used.
    fn fit_passage(
        &self,
        track_id: u64,
        with_margin: bool,
        ground_of: impl Fn(bool) -> Vec<GroundSample>,
    ) -> Option<(super::MotionFit, Vec<GroundSample>)> {
        let opts = MotionFitOptions {
            accel_prior_sd_m_s2: self.cfg.accel_prior_sd_m_s2,
            outlier_z: self.cfg.outlier_z,
        };
        let zone_m = self.zone_ground_m.as_deref();
        let noise_of = |f: &super::MotionFit| f.noise_px.max(f.lateral_noise_px);
        let zone_ground = ground_of(false);
        let zone_only = fit_zone_motion(&zone_ground, zone_m, &opts);
        let margin = with_margin
            .then(|| {
                let g = ground_of(true);
                fit_zone_motion(&g, zone_m, &opts).map(|f| (f, g))
            })
            .flatten();
        match (margin, zone_only) {
            (Some((m, _)), Some(z)) if noise_of(&m) > MARGIN_NOISE_RATIO * noise_of(&z) + 0.25 => {
                tracing::debug!(
                    track_id,
                    margin_noise_px = noise_of(&m),
                    zone_noise_px = noise_of(&z),
                    "margin samples left out: they scatter more than the zone's"
                );
                Some((z, zone_ground))
            }
            (Some(m), _) => Some(m),
            (None, Some(z)) => Some((z, zone_ground)),
            (None, None) => {
                tracing::debug!(track_id, "no speed: samples span no time");
                None
            }
        }
    }

    /// The box-noise limit for these samples, px: `max_noise_px`, raised for big boxes
    /// ([`MAX_NOISE_BOX_SHARE`] of the median box height in the zone).
    fn max_noise_px(&self, samples: &[Sample]) -> f64 {
        let mut h: Vec<f64> = samples
            .iter()
            .filter(|s| s.in_zone)
            .map(|s| s.box_h_px)
            .collect();
        h.sort_by(f64::total_cmp);
        let median = h.get(h.len() / 2).copied().unwrap_or(0.0);
        self.cfg.max_noise_px.max(MAX_NOISE_BOX_SHARE * median)
    }

    /// Relative standard deviation of the speed due to the cuboid contact model's vehicle size:
    /// `size` (fitted, or the class's) is uncertain by `rel_sd`. The first and last in-zone boxes
    /// are solved again with every dimension that much larger; the change of the distance between
    /// them is the speed's relative error.
    fn size_rel_sd(
        &self,
        samples: &[Sample],
        size: super::VehicleSize,
        rel_sd: f64,
        fit: &super::MotionFit,
    ) -> Option<f64> {
        let cam = self.camera.as_ref()?;
        let mut zone = samples.iter().filter(|s| s.in_zone);
        let (a, b) = (zone.next()?, zone.next_back()?);
        let k = 1.0 + rel_sd;
        let bigger = super::VehicleSize {
            length_m: size.length_m * k,
            width_m: size.width_m * k,
            height_m: size.height_m * k,
        };
        let dir = fit.direction;
        let along = |s: &Sample, size| {
            let g = cam.footprint_centre(s.box_px, dir, size, s.ground_m)?;
            Some(g[0] * dir[0] + g[1] * dir[1])
        };
        let d0 = along(b, size)? - along(a, size)?;
        let d1 = along(b, bigger)? - along(a, bigger)?;
        (d0.abs() > 1.0).then(|| ((d1 - d0) / d0).abs())
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
        let tracks = &self.tracks;
        self.joined.retain(|id, _| tracks.contains_key(id));
        // Fragments are measured by `expire`; one nobody expires is dropped like an idle track.
        self.fragments
            .retain(|f| latest - f.tail.t_s <= max_idle.max(f.tail.max_gap_s(0.0)));
    }
}

/// One `Inside` state from a track lost in the zone (`early`) and the track that continues it
/// (`later`, `Inside` or `Approaching`: beyond the zone already).
fn join(early: TrackZone, later: TrackZone) -> TrackZone {
    let TrackZone::Inside {
        class,
        mut samples,
        in_zone,
        last_seen_t_s,
        ..
    } = early
    else {
        return later;
    };
    match later {
        TrackZone::Inside {
            class: later_class,
            samples: more,
            in_zone: more_in,
            left,
            last_seen_t_s: seen,
        } => {
            samples.extend(more);
            TrackZone::Inside {
                class: later_class,
                samples,
                in_zone: in_zone + more_in,
                left,
                last_seen_t_s: seen.max(last_seen_t_s),
            }
        }
        TrackZone::Approaching {
            samples: more,
            last_seen_t_s: seen,
        } => {
            samples.extend(more);
            TrackZone::Inside {
                class,
                samples,
                in_zone,
                left: true,
                last_seen_t_s: seen.max(last_seen_t_s),
            }
        }
        TrackZone::Done { .. } => TrackZone::Inside {
            class,
            samples,
            in_zone,
            left: false,
            last_seen_t_s,
        },
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
        if kept.t_s != last.t_s {
            samples.push(last);
        }
    }
}

/// Capture times of the first and last in-zone samples, s.
fn zone_span_s(samples: &[Sample]) -> Option<(f64, f64)> {
    let mut zone = samples.iter().filter(|s| s.in_zone).map(|s| s.t_s);
    let first = zone.next()?;
    Some(zone.fold((first, first), |(lo, hi), t| (lo.min(t), hi.max(t))))
}

/// The fit margin of `cfg` for this zone, m (0 when off or the zone has no ground length).
fn margin_m(h: &Homography, zone: &Zone, cfg: &SpeedConfig) -> f64 {
    let share = cfg.fit_margin_share;
    if !(share.is_finite() && share > 0.0 && matches!(cfg.method, SpeedMethod::Fit)) {
        return 0.0;
    }
    zone.length_m(h).map_or(0.0, |len| share * len)
}
