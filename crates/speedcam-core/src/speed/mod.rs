//! Speed from a calibrated camera: homography, measurement zone, and a least-squares fit.
//!
//! The chain, and why each step is what it is:
//! - [`Homography`]: the road is a plane, so surveyed point pairs (image px <-> ground m) give an
//!   exact projective map between the image and the road; normalised DLT makes the fit well
//!   conditioned and the [`CalibrationReport`] tells the installer how good the survey is.
//!   The calibration fit is refined to the least image reprojection error (maximum likelihood for
//!   survey noise in the image), which gives a more precise ground scale than DLT alone.
//! - Ground point = the bottom centre of the box: the tyres' contact with the road, the only part
//!   of a vehicle that lies on the calibrated plane. (The box centre is above the road and would
//!   be mapped to a point beyond the vehicle, with an error that changes along the zone.)
//! - [`Zone`]: samples are taken only inside an image polygon over the surveyed stretch, where the
//!   calibration holds and the whole vehicle is in view.
//! - [`SpeedEstimator`]: speed = the mean speed over the zone, from a robust fit of along-track
//!   ground position over capture time on all in-zone samples ([`fit_zone_motion`]): each sample
//!   weighted by how precisely box noise places it along the road (far samples are much noisier
//!   than near ones), constant speed plus an acceleration with a zero-mean prior averaged with a
//!   plain constant-speed fit by the two models' posterior probabilities, outliers (boxes
//!   of another vehicle) dropped, and the mean taken between the fitted zone entry and exit. Time
//!   comes only from frame timestamps, so skipped frames, lost frames and jitter do not bias it;
//!   the fit averages box noise over the zone instead of relying on two crossing instants.
//! - The 95% interval ([`SpeedMeasurement::speed_ci95_kmh`]) combines the fit's error (residual
//!   scatter, Student-t quantile for its degrees of freedom) and the calibration's error (the
//!   homography's parameter covariance from its survey residuals, pushed through the zone length:
//!   [`CalibrationUncertainty`]), root-sum-square: the two are independent.

pub mod calibrate;
mod contact;
mod crossing;
mod estimator;
mod fit;
mod homography;
mod lines;
#[cfg(test)]
mod lines_tests;
mod stitch;
#[cfg(test)]
mod test_camera;
#[cfg(test)]
mod tests;
mod uncertainty;
mod zone;

pub use contact::{class_size, GroundCamera, VehicleSize};
pub use estimator::{
    GroundContact, NoSpeedReason, Passage, SpeedConfig, SpeedEstimator, SpeedMeasurement,
    SpeedMethod, Unmeasured, DEFAULT_ACCEL_PRIOR_SD_M_S2, DEFAULT_FIT_MARGIN_SHARE,
    DEFAULT_MAX_IDLE_S, DEFAULT_MAX_NOISE_PX, DEFAULT_MAX_SAMPLES, DEFAULT_OUTLIER_Z,
};
pub use fit::{
    fit_velocity, fit_velocity_weighted, fit_zone_motion, Fit, GroundSample, MotionFit,
    MotionFitOptions,
};
pub use homography::{CalibrationError, CalibrationReport, Homography};
pub use lines::{SpeedLines, SpeedLinesError, LINES_DISTANCE_TOLERANCE_M};
pub use uncertainty::{student_t_cdf, student_t_quantile, CalibrationUncertainty};
pub(crate) use zone::{point_in_polygon, polygon_edge_distance, principal_axis};
pub use zone::{Zone, ZoneError};
