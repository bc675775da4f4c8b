//! Speed from a calibrated camera: homography, measurement zone, and a least-squares fit.
//!
//! The chain, and why each step is what it is:
//! - [`Homography`]: the road is a plane, so surveyed point pairs (image px <-> ground m) give an
//!   exact projective map between the image and the road; normalised DLT makes the fit well
//!   conditioned and the [`CalibrationReport`] tells the installer how good the survey is.
//! - Ground point = the bottom centre of the box: the tyres' contact with the road, the only part
//!   of a vehicle that lies on the calibrated plane. (The box centre is above the road and would
//!   be mapped to a point beyond the vehicle, with an error that changes along the zone.)
//! - [`Zone`]: samples are taken only inside an image polygon over the surveyed stretch, where the
//!   calibration holds and the whole vehicle is in view.
//! - [`SpeedEstimator`]: speed = slope of ground position over capture time, fitted over all
//!   in-zone samples ([`fit_velocity_weighted`], each sample weighted by how precisely one pixel
//!   of box noise places it on the ground: far samples are much noisier than near ones). Time
//!   comes only from frame timestamps, so skipped frames and jitter do not bias it; the fit
//!   averages box noise over the zone instead of relying on two crossing instants.

mod estimator;
mod fit;
mod homography;
#[cfg(test)]
mod test_camera;
#[cfg(test)]
mod tests;
mod uncertainty;
mod zone;

pub use estimator::{
    SpeedConfig, SpeedEstimator, SpeedMeasurement, DEFAULT_ACCEL_PRIOR_SD_M_S2, DEFAULT_MAX_IDLE_S,
    DEFAULT_MAX_NOISE_PX, DEFAULT_MAX_SAMPLES, DEFAULT_OUTLIER_Z,
};
pub use fit::{
    fit_velocity, fit_velocity_weighted, fit_zone_motion, Fit, GroundSample, MotionFit,
    MotionFitOptions,
};
pub use homography::{CalibrationError, CalibrationReport, Homography};
pub use uncertainty::{student_t_cdf, student_t_quantile, CalibrationUncertainty};
pub use zone::{Zone, ZoneError};
