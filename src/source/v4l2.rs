//! V4L2 capture devices (USB webcam, CSI camera, HDMI grabber): the device layer, in builds with
//! the `v4l2` feature. Negotiation, timestamps, errno classification and conversion are pure
//! logic in [`speedcam_core::source::capture`], re-exported here.

pub use speedcam_core::source::capture::*;

use crate::source::{Source, SourceError};
use std::sync::Arc;

#[cfg(feature = "v4l2")]
#[path = "v4l2_device.rs"]
mod device;
#[cfg(feature = "v4l2")]
pub use device::V4l2Source;

/// Opens a V4L2 device, or says that this build has no V4L2 support and how to get it.
#[cfg(feature = "v4l2")]
pub fn open(opts: V4l2Options, camera: Arc<str>) -> Result<Box<dyn Source>, SourceError> {
    Ok(Box::new(V4l2Source::open(opts, camera)?))
}

/// Opens a V4L2 device, or says that this build has no V4L2 support and how to get it.
#[cfg(not(feature = "v4l2"))]
pub fn open(opts: V4l2Options, _camera: Arc<str>) -> Result<Box<dyn Source>, SourceError> {
    Err(SourceError::Connect {
        uri: opts.device.display().to_string(),
        cause: speedcam_core::source::link::LinkError::NotBuilt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_errors_name_the_remedy() {
        // A node that does not exist, through the real open path.
        let err = open(V4l2Options::new("/nonexistent/video9"), "cam".into());
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("cannot connect to /nonexistent/video9"),
            "{msg}"
        );
        if cfg!(feature = "v4l2") {
            assert!(msg.contains("v4l2-ctl --list-devices"), "{msg}");
            // Not a V4L2 device at all.
            let err = open(V4l2Options::new("/dev/null"), "cam".into());
            assert!(matches!(err.err(), Some(SourceError::Connect { .. })));
        } else {
            // A build without the feature names it and the fix.
            assert!(msg.contains("--features v4l2"), "{msg}");
        }
    }
}
