//! Per-model, per-class box correction: where a detector's box edges sit relative to the
//! vehicle's true extent, learnt from rendered scenes with known contact points.
//!
//! A detector's box bottom is not exactly where the tyres touch the road: NanoDet draws the
//! demo's vehicles about 2.7 px low, the same way on every frame, so every speed reads about 1%
//! low (random box noise averages out over a zone, a systematic offset does not). A
//! [`BoxCorrection`] holds, per class label, a straight line per edge:
//! `true edge - detected edge = offset_px + per_size * size`, where `size` is the detected box's
//! height for the top and bottom edges and its width for the left and right edges. It is fit
//! robustly (least absolute deviations) on detections of rendered vehicles whose true box is
//! known (`cargo run --release --example video_accuracy -- --fit ...`, see models/README.md) and
//! stored beside the model file as `<model>.contact.toml`, with the model's content hash: a
//! correction is only valid for the model it was learnt on.
//!
//! The detector applies it after NMS, in frame pixels ([`BoxCorrection::apply`]), so the
//! tracker, the speed stage and the thumbnails see corrected boxes and nothing else changes.

use super::{BoxCorrectionSetting, DetectError, Detection};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the file format written by [`BoxCorrection::to_toml`].
pub const SCHEMA_VERSION: u32 = 1;

/// File name suffix of the correction that `box_correction = "auto"` looks for beside the model.
pub const SUFFIX: &str = ".contact.toml";

/// One edge's line: `true - detected = offset_px + per_size * size`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct EdgeFit {
    /// Constant part, px.
    pub offset_px: f64,
    /// Part proportional to the box size (height for top/bottom, width for left/right).
    pub per_size: f64,
    /// Median absolute residual after the correction, px (how much is left: not used).
    #[serde(default)]
    pub mad_px: f64,
}

impl EdgeFit {
    /// The shift for a box of `size` px, px.
    pub fn shift_px(&self, size: f64) -> f64 {
        self.offset_px + self.per_size * size
    }
}

/// The four edges of one class.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ClassFit {
    /// Boxes it was fit on.
    pub boxes: u64,
    /// Left edge (x1).
    pub left: EdgeFit,
    /// Top edge (y1).
    pub top: EdgeFit,
    /// Right edge (x2).
    pub right: EdgeFit,
    /// Bottom edge (y2): where the ground contact lies.
    pub bottom: EdgeFit,
}

/// A detector's box correction (the `<model>.contact.toml` file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxCorrection {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Model id it was learnt on, `file-name@hash8` ([`super::model_id_of`]).
    pub model: String,
    /// The command that made it.
    #[serde(default)]
    pub command: String,
    /// Rendered scenes it was learnt from.
    #[serde(default)]
    pub scenes: u64,
    /// Per class label (e.g. "car", "truck"); classes not listed are not corrected.
    pub classes: BTreeMap<String, ClassFit>,
}

/// The hash part of a model id (`name@hash` -> `hash`; an id without `@` is its own hash).
fn hash_of(model_id: &str) -> &str {
    model_id.rsplit_once('@').map_or(model_id, |(_, h)| h)
}

/// Where `box_correction = "auto"` looks for a model's correction.
pub fn beside(model: &Path) -> PathBuf {
    let mut p = model.as_os_str().to_owned();
    p.push(SUFFIX);
    PathBuf::from(p)
}

impl BoxCorrection {
    /// Reads and checks a correction file for the model `model_id`: schema version, and that
    /// it was learnt on a model with the same content hash.
    pub fn load(path: &Path, model_id: &str) -> Result<BoxCorrection, DetectError> {
        let err = |reason: String| DetectError::BoxCorrection {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let c: BoxCorrection = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        if c.schema != SCHEMA_VERSION {
            return Err(err(format!(
                "schema {} is not supported (this build reads {SCHEMA_VERSION}): make it again \
                 with this build (models/README.md, \"Box correction\")",
                c.schema
            )));
        }
        if hash_of(&c.model) != hash_of(model_id) {
            return Err(err(format!(
                "it was learnt on model {} but the detector runs {model_id}: make one for this \
                 model (models/README.md, \"Box correction\") or set detector.box_correction = \
                 \"off\"",
                c.model
            )));
        }
        for (class, f) in &c.classes {
            let all = [f.left, f.top, f.right, f.bottom];
            if all
                .iter()
                .any(|e| !e.offset_px.is_finite() || !e.per_size.is_finite())
            {
                return Err(err(format!("class {class:?} has a non-finite coefficient")));
            }
        }
        Ok(c)
    }

    /// The correction `setting` selects for the model `model` (id `model_id`): none for
    /// "off", and for "auto" when no file lies beside the model (logged once); an error when
    /// a named file is missing, or any file is unreadable or for another model.
    pub fn for_setting(
        setting: &BoxCorrectionSetting,
        model: &Path,
        model_id: &str,
    ) -> Result<Option<BoxCorrection>, DetectError> {
        let path = match setting {
            BoxCorrectionSetting::Off => return Ok(None),
            BoxCorrectionSetting::Path(p) => p.clone(),
            BoxCorrectionSetting::Auto => {
                let p = beside(model);
                if !p.is_file() {
                    tracing::info!(
                        looked_for = %p.display(),
                        "no box correction for this model: boxes are used as detected \
                         (models/README.md says how to make one)"
                    );
                    return Ok(None);
                }
                p
            }
        };
        let c = Self::load(&path, model_id)?;
        tracing::info!(
            path = %path.display(),
            classes = ?c.classes.keys().collect::<Vec<_>>(),
            "box correction loaded"
        );
        Ok(Some(c))
    }

    /// Corrects `d`'s box in place (frame px, `frame_w` x `frame_h`). Edges lying on the
    /// frame border are left alone: the vehicle is cut there, the box edge is not the
    /// vehicle's. A box the correction would turn inside out is left as detected.
    pub fn apply(&self, d: &mut Detection, frame_w: f32, frame_h: f32) {
        let Some(f) = self.classes.get(d.class) else {
            return;
        };
        let b = d.bbox;
        let (w, h) = (f64::from(b.x2 - b.x1), f64::from(b.y2 - b.y1));
        let inner = |v: f32, max: f32| v > 0.5 && v < max - 0.5;
        let mut n = b;
        if inner(b.x1, frame_w) {
            n.x1 = b.x1 + f.left.shift_px(w) as f32;
        }
        if inner(b.x2, frame_w) {
            n.x2 = b.x2 + f.right.shift_px(w) as f32;
        }
        if inner(b.y1, frame_h) {
            n.y1 = b.y1 + f.top.shift_px(h) as f32;
        }
        if inner(b.y2, frame_h) {
            n.y2 = b.y2 + f.bottom.shift_px(h) as f32;
        }
        if n.x2 > n.x1 && n.y2 > n.y1 {
            d.bbox = n;
        }
    }

    /// The file's text: the fit as TOML with a header saying what it is.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!(
            "# speedcam box correction (src/detect/box_correction.rs): per class label, for each box\n\
             # edge, true edge - detected edge = offset_px + per_size * size (size: the detected box's\n\
             # height for top/bottom, width for left/right), a least-absolute-deviations fit on\n\
             # detections of rendered vehicles with known extent. mad_px: what is left.\n\
             # Valid only for the model whose hash is in `model`; models/README.md says how to remake it.\n\
             {body}"
        )
    }
}

/// One detection matched to a true box, for [`fit`]: the class label, the detected box and
/// the true box (`[left, top, right, bottom]`, frame px).
#[derive(Debug, Clone, PartialEq)]
pub struct FitSample {
    /// Detector class label.
    pub class: String,
    /// Detected box.
    pub detected: [f64; 4],
    /// True box.
    pub truth: [f64; 4],
}

/// Least-absolute-deviations line `r = a + b * s` by iteratively reweighted least squares;
/// returns `(a, b)`. With one distinct size it is the median.
fn lad_line(s: &[f64], r: &[f64]) -> (f64, f64) {
    let (mut a, mut b) = (median(r.to_vec()), 0.0);
    let spread = {
        let lo = s.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        hi - lo
    };
    if spread < 1e-9 {
        return (a, b);
    }
    for _ in 0..60 {
        let (mut sw, mut sws, mut swr, mut swss, mut swsr) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&si, &ri) in s.iter().zip(r) {
            let w = 1.0 / (ri - a - b * si).abs().max(1e-3);
            sw += w;
            sws += w * si;
            swr += w * ri;
            swss += w * si * si;
            swsr += w * si * ri;
        }
        let det = sw * swss - sws * sws;
        if det.abs() < 1e-12 {
            break;
        }
        let nb = (sw * swsr - sws * swr) / det;
        let na = (swr - nb * sws) / sw;
        let done = (na - a).abs() < 1e-6 && (nb - b).abs() < 1e-9;
        (a, b) = (na, nb);
        if done {
            break;
        }
    }
    (a, b)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Fits one [`ClassFit`] per class label with at least `min_boxes` samples.
pub fn fit(samples: &[FitSample], min_boxes: usize) -> BTreeMap<String, ClassFit> {
    let mut by_class: BTreeMap<&str, Vec<&FitSample>> = BTreeMap::new();
    for s in samples {
        by_class.entry(s.class.as_str()).or_default().push(s);
    }
    let edge = |v: &[&FitSample], i: usize| {
        // Left/right scale with the width, top/bottom with the height.
        let size: Vec<f64> = v
            .iter()
            .map(|s| {
                if i.is_multiple_of(2) {
                    s.detected[2] - s.detected[0]
                } else {
                    s.detected[3] - s.detected[1]
                }
            })
            .collect();
        let res: Vec<f64> = v.iter().map(|s| s.truth[i] - s.detected[i]).collect();
        let (offset_px, per_size) = lad_line(&size, &res);
        let mad_px = median(
            size.iter()
                .zip(&res)
                .map(|(s, r)| (r - offset_px - per_size * s).abs())
                .collect(),
        );
        EdgeFit {
            offset_px,
            per_size,
            mad_px,
        }
    };
    by_class
        .into_iter()
        .filter(|(_, v)| v.len() >= min_boxes)
        .map(|(class, v)| {
            (
                class.to_string(),
                ClassFit {
                    boxes: v.len() as u64,
                    left: edge(&v, 0),
                    top: edge(&v, 1),
                    right: edge(&v, 2),
                    bottom: edge(&v, 3),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::BBox;

    fn det(class: &'static str, b: [f32; 4]) -> Detection {
        Detection {
            bbox: BBox {
                x1: b[0],
                y1: b[1],
                x2: b[2],
                y2: b[3],
            },
            score: 0.9,
            class_id: 2,
            class,
        }
    }

    fn correction(bottom: EdgeFit) -> BoxCorrection {
        BoxCorrection {
            schema: SCHEMA_VERSION,
            model: "m.onnx@0123abcd".into(),
            command: "test".into(),
            scenes: 1,
            classes: [(
                "car".to_string(),
                ClassFit {
                    boxes: 10,
                    bottom,
                    left: EdgeFit {
                        offset_px: 1.0,
                        ..EdgeFit::default()
                    },
                    ..ClassFit::default()
                },
            )]
            .into(),
        }
    }

    #[test]
    fn fit_recovers_a_size_dependent_offset_despite_outliers() {
        // Truth bottom = detected bottom - 0.5 - 0.02 * height; one box in ten is way off.
        let samples: Vec<FitSample> = (0..200)
            .map(|i| {
                let h = 20.0 + f64::from(i);
                let mut bottom = 100.0 + h - 0.5 - 0.02 * h;
                if i % 10 == 3 {
                    bottom += 15.0;
                }
                FitSample {
                    class: "car".into(),
                    detected: [10.0, 100.0, 10.0 + 2.0 * h, 100.0 + h],
                    truth: [10.0, 100.0, 10.0 + 2.0 * h, bottom],
                }
            })
            .collect();
        let fits = fit(&samples, 50);
        let f = fits["car"];
        assert_eq!(f.boxes, 200);
        assert!((f.bottom.offset_px + 0.5).abs() < 0.05, "{:?}", f.bottom);
        assert!((f.bottom.per_size + 0.02).abs() < 5e-4, "{:?}", f.bottom);
        assert!(f.left.offset_px.abs() < 1e-6 && f.left.per_size.abs() < 1e-6);
        // Too few boxes: no fit for the class.
        assert!(fit(&samples[..10], 50).is_empty());
    }

    #[test]
    fn apply_moves_inner_edges_of_corrected_classes_only() {
        let c = correction(EdgeFit {
            offset_px: -1.0,
            per_size: -0.1,
            mad_px: 0.0,
        });
        let mut d = det("car", [100.0, 50.0, 200.0, 90.0]);
        c.apply(&mut d, 640.0, 480.0);
        assert_eq!(d.bbox.x1, 101.0);
        assert_eq!(d.bbox.x2, 200.0);
        assert!((d.bbox.y2 - 85.0).abs() < 1e-4, "{:?}", d.bbox);
        // A class without a fit is untouched.
        let mut t = det("truck", [100.0, 50.0, 200.0, 90.0]);
        c.apply(&mut t, 640.0, 480.0);
        assert_eq!(t.bbox.y2, 90.0);
        // An edge on the frame border is where the picture ends, not the vehicle.
        let mut cut = det("car", [0.0, 400.0, 100.0, 480.0]);
        c.apply(&mut cut, 640.0, 480.0);
        assert_eq!((cut.bbox.x1, cut.bbox.y2), (0.0, 480.0));
    }

    #[test]
    fn load_checks_the_model_hash_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx.contact.toml");
        let c = correction(EdgeFit {
            offset_px: -0.7,
            per_size: -0.01,
            mad_px: 0.3,
        });
        std::fs::write(&path, c.to_toml()).unwrap();
        assert_eq!(
            BoxCorrection::load(&path, "renamed.onnx@0123abcd").unwrap(),
            c
        );
        let err = BoxCorrection::load(&path, "m.onnx@ffff0000")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("m.onnx@0123abcd")
                && err.contains("m.onnx@ffff0000")
                && err.contains("box_correction = \"off\""),
            "{err}"
        );
    }

    #[test]
    fn settings_pick_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.onnx");
        // auto without a file: no correction, no error.
        let none = BoxCorrection::for_setting(&BoxCorrectionSetting::Auto, &model, "m@0123abcd");
        assert_eq!(none.unwrap(), None);
        // A named file that is missing is an error.
        let missing = BoxCorrectionSetting::Path(dir.path().join("nope.toml"));
        assert!(BoxCorrection::for_setting(&missing, &model, "m@0123abcd").is_err());
        // auto with the file beside the model loads it; off ignores it.
        let c = correction(EdgeFit::default());
        std::fs::write(beside(&model), c.to_toml()).unwrap();
        let auto = BoxCorrection::for_setting(&BoxCorrectionSetting::Auto, &model, "m@0123abcd");
        assert_eq!(auto.unwrap(), Some(c));
        let off = BoxCorrection::for_setting(&BoxCorrectionSetting::Off, &model, "m@0123abcd");
        assert_eq!(off.unwrap(), None);
    }
}
