//! A cheap motion check on a downscaled luma frame: the scheduler's alarm clock.
//!
//! When the road is empty the scheduler detects only a few times a second; a vehicle that drives
//! in between those detections must still be seen at once. Running the detector to find out would
//! defeat the purpose, so this check compares a coarse luma grid (about 160 cells across, each
//! sampled sparsely) with a slowly adapting background. It costs well under a millisecond
//! on a 1280x720 frame.
//!
//! Why it looks the way it does:
//! - A background (exponential moving average with a time constant in seconds of frame time, not
//!   in frames) rather than the previous frame: a slow vehicle changes little between consecutive
//!   frames but a lot against the empty road.
//! - The mean difference over the grid is removed first, so an auto-exposure step or a cloud does
//!   not read as motion everywhere.
//! - Cells under boxes the tracker already follows can be ignored by the caller: a vehicle that is
//!   leaving must not keep the camera awake.

use crate::detect::BBox;
use crate::frame::{buffer_len, Frame, PixelFormat};

/// Settings of [`MotionDetector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionConfig {
    /// Luma change of one cell, in 0..255 levels, that counts as changed.
    pub delta_levels: f32,
    /// Changed area, px² of the full frame, that counts as motion (e.g. 400 = a 20 x 20 px blob).
    pub min_area_px2: f32,
    /// Background time constant, s of frame time: how fast a parked car becomes background.
    pub background_s: f64,
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig {
            delta_levels: 12.0,
            min_area_px2: 400.0,
            background_s: 2.0,
        }
    }
}

/// What one motion check found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionResult {
    /// Changed area outside ignored boxes, px² of the full frame.
    pub changed_px2: f32,
    /// Whether that is at least [`MotionConfig::min_area_px2`] (or this was the first frame).
    pub motion: bool,
}

/// Coarse luma background model of one camera.
#[derive(Debug, Clone)]
pub struct MotionDetector {
    cfg: MotionConfig,
    /// Grid geometry of the current background: frame size and cell side in px.
    geometry: Option<(u32, u32, u32)>,
    background: Vec<f32>,
    cells: Vec<f32>,
    last_t_s: f64,
}

/// Cell side for a frame `width` px wide: about 160 cells across, at least 4 px.
fn cell_px_for(width: u32) -> u32 {
    (width / 160).max(4)
}

impl MotionDetector {
    /// A detector with no background yet: the first frame reports motion.
    pub fn new(cfg: MotionConfig) -> Self {
        MotionDetector {
            cfg,
            geometry: None,
            background: Vec::new(),
            cells: Vec::new(),
            last_t_s: 0.0,
        }
    }

    /// Compares `frame` (taken at `t_s`) with the background, ignoring cells whose centre lies
    /// inside any of `ignore` (frame px), then blends the frame into the background. A frame of
    /// a new size, or one whose buffer does not match its size, restarts the background and
    /// reports motion (the safe answer: detect).
    pub fn check(&mut self, frame: &Frame, t_s: f64, ignore: &[BBox]) -> MotionResult {
        let (w, h) = (frame.width, frame.height);
        let wake = MotionResult {
            changed_px2: f32::INFINITY,
            motion: true,
        };
        if w == 0 || h == 0 || frame.data.len() != buffer_len(frame.format, w, h) {
            self.geometry = None;
            return wake;
        }
        let cell = cell_px_for(w);
        let (gw, gh) = (w.div_ceil(cell) as usize, h.div_ceil(cell) as usize);
        luma_grid(frame, cell, gw, gh, &mut self.cells);
        if self.geometry != Some((w, h, cell)) {
            self.geometry = Some((w, h, cell));
            self.background.clone_from(&self.cells);
            self.last_t_s = t_s;
            return wake;
        }
        let n = self.cells.len() as f32;
        let mean_diff: f32 = self
            .cells
            .iter()
            .zip(&self.background)
            .map(|(c, b)| c - b)
            .sum::<f32>()
            / n;
        let cell_f = cell as f32;
        let dt_s = (t_s - self.last_t_s).max(0.0);
        self.last_t_s = t_s;
        let alpha = if self.cfg.background_s > 0.0 {
            (1.0 - (-dt_s / self.cfg.background_s).exp()) as f32
        } else {
            1.0
        };
        let mut changed = 0usize;
        for gy in 0..gh {
            for gx in 0..gw {
                let i = gy * gw + gx;
                let d = (self.cells[i] - self.background[i] - mean_diff).abs();
                let (cx, cy) = ((gx as f32 + 0.5) * cell_f, (gy as f32 + 0.5) * cell_f);
                // A margin of one cell: a box edge cuts through cells.
                let m = cell_f;
                let covered = ignore
                    .iter()
                    .any(|b| cx >= b.x1 - m && cx <= b.x2 + m && cy >= b.y1 - m && cy <= b.y2 + m);
                let moving = d >= self.cfg.delta_levels;
                if moving && !covered {
                    changed += 1;
                }
                // Selective update: what moves (or is tracked) blends in ten times slower, so a
                // passing vehicle leaves no trail in the background, yet a parked one is
                // absorbed after about ten time constants.
                let a = if moving || covered {
                    alpha * 0.1
                } else {
                    alpha
                };
                self.background[i] += a * (self.cells[i] - self.background[i]);
            }
        }
        let changed_px2 = changed as f32 * cell_f * cell_f;
        MotionResult {
            changed_px2,
            motion: changed_px2 >= self.cfg.min_area_px2,
        }
    }
}

/// Mean luma of each `cell x cell` block into `out` (`gw * gh` values, row-major), sampling
/// every `cell / 2`-th row and column (at least every other): 4 samples a cell are plenty to see
/// a vehicle (which covers many cells) and keep the check at a fraction of a millisecond. The buffer length was
/// checked by the caller.
fn luma_grid(frame: &Frame, cell: u32, gw: usize, gh: usize, out: &mut Vec<f32>) {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let cell = cell as usize;
    let step = (cell / 2).max(2);
    out.clear();
    out.resize(gw * gh, 0.0);
    let mut counts = vec![0u32; gw * gh];
    let data = &frame.data[..];
    for y in (0..h).step_by(step) {
        let gy = y / cell;
        let row = &mut out[gy * gw..(gy + 1) * gw];
        let crow = &mut counts[gy * gw..(gy + 1) * gw];
        match frame.format {
            PixelFormat::I420 => {
                let line = &data[y * w..(y + 1) * w];
                for x in (0..w).step_by(step) {
                    row[x / cell] += line[x] as f32;
                    crow[x / cell] += 1;
                }
            }
            PixelFormat::Rgb8 => {
                let line = &data[y * w * 3..(y + 1) * w * 3];
                for x in (0..w).step_by(step) {
                    let p = &line[x * 3..x * 3 + 3];
                    // Rec. 601 luma weights in 1/4 units: cheap and close enough for change
                    // detection.
                    let l = (p[0] as u32 + 2 * p[1] as u32 + p[2] as u32) as f32 * 0.25;
                    row[x / cell] += l;
                    crow[x / cell] += 1;
                }
            }
        }
    }
    for (v, &c) in out.iter_mut().zip(&counts) {
        if c > 0 {
            *v /= c as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grey I420 frame with an optional bright rectangle (x, y, w, h) in px.
    fn frame(w: u32, h: u32, grey: u8, rect: Option<(u32, u32, u32, u32)>) -> Frame {
        let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([grey, grey, grey]));
        if let Some((x0, y0, rw, rh)) = rect {
            for y in y0..(y0 + rh).min(h) {
                for x in x0..(x0 + rw).min(w) {
                    img.put_pixel(x, y, image::Rgb([235, 235, 235]));
                }
            }
        }
        Frame::i420_from_rgb_image("t".into(), 0, 0, &img)
    }

    #[test]
    fn first_frame_wakes_then_a_static_scene_is_quiet() {
        let mut m = MotionDetector::new(MotionConfig::default());
        let f = frame(320, 180, 90, None);
        assert!(m.check(&f, 0.0, &[]).motion);
        for i in 1..10 {
            let r = m.check(&f, i as f64 / 30.0, &[]);
            assert!(!r.motion, "{r:?}");
            assert_eq!(r.changed_px2, 0.0);
        }
    }

    #[test]
    fn a_vehicle_sized_blob_is_motion_and_a_speck_is_not() {
        let cfg = MotionConfig::default();
        let mut m = MotionDetector::new(cfg);
        m.check(&frame(640, 360, 90, None), 0.0, &[]);
        let car = m.check(&frame(640, 360, 90, Some((100, 100, 40, 24))), 0.033, &[]);
        assert!(car.motion, "{car:?}");
        assert!(car.changed_px2 >= 40.0 * 24.0 * 0.5, "{car:?}");
        let mut m = MotionDetector::new(cfg);
        m.check(&frame(640, 360, 90, None), 0.0, &[]);
        let speck = m.check(&frame(640, 360, 90, Some((100, 100, 6, 6))), 0.033, &[]);
        assert!(!speck.motion, "{speck:?}");
    }

    #[test]
    fn a_global_brightness_step_is_not_motion() {
        let mut m = MotionDetector::new(MotionConfig::default());
        m.check(&frame(320, 180, 90, None), 0.0, &[]);
        let r = m.check(&frame(320, 180, 130, None), 0.033, &[]);
        assert!(!r.motion, "{r:?}");
    }

    #[test]
    fn ignored_boxes_hide_their_motion() {
        let mut m = MotionDetector::new(MotionConfig::default());
        m.check(&frame(640, 360, 90, None), 0.0, &[]);
        let tracked = BBox {
            x1: 90.0,
            y1: 90.0,
            x2: 150.0,
            y2: 130.0,
        };
        let r = m.check(
            &frame(640, 360, 90, Some((100, 100, 40, 24))),
            0.033,
            &[tracked],
        );
        assert!(!r.motion, "{r:?}");
    }

    #[test]
    fn a_parked_vehicle_becomes_background() {
        let cfg = MotionConfig {
            background_s: 1.0,
            ..MotionConfig::default()
        };
        let mut m = MotionDetector::new(cfg);
        m.check(&frame(320, 180, 90, None), 0.0, &[]);
        let parked = frame(320, 180, 90, Some((50, 50, 40, 30)));
        assert!(m.check(&parked, 0.1, &[]).motion);
        let mut t = 0.1;
        while t < 40.0 {
            t += 1.0 / 30.0;
            m.check(&parked, t, &[]);
        }
        assert!(!m.check(&parked, t + 0.033, &[]).motion);
    }

    #[test]
    fn bad_buffers_wake_instead_of_panicking() {
        let mut m = MotionDetector::new(MotionConfig::default());
        let mut f = frame(64, 32, 90, None);
        m.check(&f, 0.0, &[]);
        f.width = 128;
        assert!(m.check(&f, 0.1, &[]).motion);
        f.width = 0;
        assert!(m.check(&f, 0.2, &[]).motion);
    }
}
