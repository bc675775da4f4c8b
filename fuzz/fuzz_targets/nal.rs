//! The H.264 path on arbitrary bytes: NAL splitting, avcC and SPS parsing, the openh264
//! decoder and the copy into a frame (see `speedcam_core::source::fuzz::nal` for the layout).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| speedcam_core::source::fuzz::nal(data));
