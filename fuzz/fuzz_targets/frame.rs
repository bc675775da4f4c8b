//! The V4L2 capture converters (YUYV, NV12, MJPEG) on arbitrary buffers and sizes, zero
//! included (see `speedcam_core::source::fuzz::frame` for the layout).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| speedcam_core::source::fuzz::frame(data));
