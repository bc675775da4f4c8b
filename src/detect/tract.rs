//! The pure-Rust CPU backend: runs an ONNX model with `tract`, so the default build needs no
//! native libraries.

use std::path::Path;
use std::time::Instant;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use super::letterbox::{LetterboxMap, Letterboxer};
use super::nanodet::{self, OUTPUT_COLS};
use super::nms::nms_per_class;
use super::{class_ids, BBox, DetectError, DetectTimings, Detection, Detector, DetectorConfig};

/// A NanoDet-family detector running on tract's optimized CPU plan.
pub struct TractDetector {
    plan: TypedSimpleState,
    letterbox: Letterboxer,
    wanted: Vec<u16>,
    score_threshold: f32,
    nms_iou: f32,
    model_id: String,
}

impl std::fmt::Debug for TractDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractDetector")
            .field("model_id", &self.model_id)
            .field("input_size", &self.letterbox.input_size())
            .field("wanted", &self.wanted)
            .finish_non_exhaustive()
    }
}

/// 64-bit FNV-1a of `bytes`: a cheap, stable content fingerprint (not a security hash).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `file-name@hash8`, where hash8 is the first 8 hex digits of the contents' FNV-1a.
fn model_id_of(path: &Path, bytes: &[u8]) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    format!("{name}@{:08x}", fnv1a64(bytes) >> 32)
}

impl TractDetector {
    /// Loads and optimizes the model in `cfg.model` for the `nanodet` family.
    ///
    /// The square input side comes from the model when its input shape is fixed, else from
    /// `cfg.input_size`. Fails with [`DetectError::Load`] when the file cannot be read or parsed,
    /// [`DetectError::Layout`] when the tensors are not NanoDet's, and
    /// [`DetectError::UnknownClass`] for a class name that is not COCO-80.
    pub fn load(cfg: &DetectorConfig) -> Result<TractDetector, DetectError> {
        let wanted = class_ids(&cfg.classes)?;
        let path = cfg.model.display().to_string();
        let load_err = |reason: String| DetectError::Load {
            path: path.clone(),
            reason,
        };
        let layout_err = |reason: String| DetectError::Layout {
            path: path.clone(),
            family: cfg.family.clone(),
            reason,
        };
        let bytes = std::fs::read(&cfg.model)
            .map_err(|e| load_err(format!("{e}; check the detector model path")))?;
        let model = tract_onnx::onnx()
            .model_for_read(&mut bytes.as_slice())
            .map_err(|e| {
                load_err(format!(
                    "not a readable ONNX model ({e:#}); point detector model at an .onnx file \
                     such as models/nanodet-g-416.onnx"
                ))
            })?;
        if model.inputs.len() != 1 {
            return Err(layout_err(format!(
                "expected 1 input [1,3,S,S], found {}",
                model.inputs.len()
            )));
        }
        let size = input_size_of(&model, cfg.input_size).map_err(layout_err)?;
        let rows = nanodet::output_rows(size);
        let typed = model
            .with_input_fact(0, f32::fact([1, 3, size as usize, size as usize]).into())
            .and_then(|m| m.into_optimized())
            .map_err(|e| {
                layout_err(format!(
                    "cannot build a plan for input [1,3,{size},{size}] ({e:#}); \
                     expected a NanoDet model with one image input"
                ))
            })?;
        let out_shape = typed
            .output_fact(0)
            .ok()
            .and_then(|f| f.shape.as_concrete().map(|s| s.to_vec()));
        let want = [1, rows, OUTPUT_COLS];
        if out_shape.as_deref() != Some(&want[..]) {
            return Err(layout_err(format!(
                "output 0 has shape {out_shape:?}, expected [1, {rows}, {OUTPUT_COLS}] \
                 ({rows} grid cells at strides 8/16/32 for a {size} px input, 80 class scores \
                 + 4 x 11 distance bins)"
            )));
        }
        let plan = typed
            .into_runnable()
            .and_then(|p| p.spawn())
            .map_err(|e| load_err(format!("cannot prepare the model to run ({e:#})")))?;
        Ok(TractDetector {
            plan,
            letterbox: Letterboxer::new(size),
            wanted,
            score_threshold: cfg.score_threshold,
            nms_iou: cfg.nms_iou,
            model_id: model_id_of(&cfg.model, &bytes),
        })
    }

    /// Side of the square model input, px.
    pub fn input_size(&self) -> u32 {
        self.letterbox.input_size()
    }
}

/// The square input side: fixed in the model, else `configured`. Errors name the fix.
fn input_size_of(model: &InferenceModel, configured: Option<u32>) -> Result<u32, String> {
    let fact = model
        .input_fact(0)
        .map_err(|e| format!("cannot read the input shape ({e:#})"))?;
    let dims: Vec<Option<usize>> = (0..4)
        .map(|i| {
            fact.shape
                .dim(i)
                .and_then(|d| d.concretize())
                .and_then(|d| d.as_i64())
                .and_then(|d| usize::try_from(d).ok())
        })
        .collect();
    if let Some(rank) = fact.shape.rank().concretize() {
        if rank != 4 {
            return Err(format!("input has rank {rank}, expected [1,3,S,S]"));
        }
    }
    if let Some(c) = dims[1] {
        if c != 3 {
            return Err(format!("input has {c} channels, expected [1,3,S,S]"));
        }
    }
    match (dims[2], dims[3], configured) {
        (Some(h), Some(w), _) if h == w && h > 0 => {
            if let Some(c) = configured.filter(|&c| c as usize != h) {
                tracing::warn!(
                    model = h,
                    configured = c,
                    "detector input_size ignored: the model fixes its input size"
                );
            }
            Ok(h as u32)
        }
        (Some(h), Some(w), _) => Err(format!(
            "input is {w}x{h}, expected a square [1,3,S,S] input"
        )),
        (_, _, Some(c)) if c >= 32 && c % 32 == 0 => Ok(c),
        (_, _, Some(c)) => Err(format!(
            "input_size {c} is not a multiple of 32: set detector input_size to e.g. 416"
        )),
        _ => Err(
            "the model's input size is not fixed: set detector input_size (a multiple of 32, \
             e.g. 416)"
                .to_string(),
        ),
    }
}

impl Detector for TractDetector {
    fn detect(
        &mut self,
        frame: &crate::frame::Frame,
    ) -> Result<(Vec<Detection>, DetectTimings), DetectError> {
        let t0 = Instant::now();
        let size = self.letterbox.input_size() as usize;
        let mut input = vec![0.0f32; self.letterbox.input_len()];
        let map = self
            .letterbox
            .run(frame, &mut input)
            .map_err(|e| DetectError::Run(format!("bad frame: {e}")))?;
        let tensor: Tensor = tract_ndarray::Array4::from_shape_vec((1, 3, size, size), input)
            .map_err(|e| DetectError::Run(format!("input tensor: {e}")))?
            .into();
        let t1 = Instant::now();
        let outputs = self
            .plan
            .run(tvec!(tensor.into_tvalue()))
            .map_err(|e| DetectError::Run(format!("{e:#}")))?;
        let t2 = Instant::now();
        let out = outputs
            .first()
            .ok_or_else(|| DetectError::Run("model returned no output".into()))?
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
            .map_err(|e| DetectError::Run(format!("output is not f32: {e:#}")))?;
        let cands = nanodet::decode(&out, size as u32, &self.wanted, self.score_threshold)?;
        let dets = to_frame(nms_per_class(cands, self.nms_iou), &map, frame);
        let t3 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        Ok((
            dets,
            DetectTimings {
                preprocess_ms: ms(t0, t1),
                inference_ms: ms(t1, t2),
                postprocess_ms: ms(t2, t3),
            },
        ))
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }
}

/// Maps boxes from input px to frame px, clipped to the frame; drops boxes left empty.
fn to_frame(
    dets: Vec<Detection>,
    map: &LetterboxMap,
    frame: &crate::frame::Frame,
) -> Vec<Detection> {
    let (w, h) = (frame.width as f32, frame.height as f32);
    dets.into_iter()
        .filter_map(|mut d| {
            let b = map.to_frame(&d.bbox);
            d.bbox = BBox {
                x1: b.x1.clamp(0.0, w),
                y1: b.y1.clamp(0.0, h),
                x2: b.x2.clamp(0.0, w),
                y2: b.y2.clamp(0.0, h),
            };
            (d.bbox.area() > 0.0).then_some(d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::open;
    use crate::frame::Frame;
    use std::path::PathBuf;
    use std::sync::{Mutex, OnceLock};

    fn i420(img: &image::RgbImage) -> Frame {
        Frame::i420_from_rgb_image("t".into(), 0, 0, img)
    }

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn config() -> DetectorConfig {
        DetectorConfig {
            model: root().join("models/nanodet-g-416.onnx"),
            ..DetectorConfig::default()
        }
    }

    /// The default detector, loaded once per test binary (loading + optimizing takes a while).
    fn detector() -> &'static Mutex<Box<dyn Detector>> {
        static DET: OnceLock<Mutex<Box<dyn Detector>>> = OnceLock::new();
        DET.get_or_init(|| Mutex::new(open(&config()).expect("default model loads")))
    }

    fn image(name: &str) -> image::RgbImage {
        image::open(root().join("tests/data/images").join(name))
            .unwrap()
            .to_rgb8()
    }

    /// A hand-labelled vehicle: box in image px and the classes that count as a hit.
    struct Truth {
        bbox: BBox,
        classes: &'static [&'static str],
    }

    fn truth(x1: f32, y1: f32, x2: f32, y2: f32, classes: &'static [&'static str]) -> Truth {
        Truth {
            bbox: BBox { x1, y1, x2, y2 },
            classes,
        }
    }

    /// Boxes read off the images by hand (tight around the visible vehicle body and wheels).
    fn ground_truth(name: &str) -> Vec<Truth> {
        match name {
            // White pickup with a cap parked behind the porch; COCO calls pickups trucks, the
            // model says car first and truck second: either is right.
            "darknet_dog.jpg" => vec![truth(466.0, 76.0, 686.0, 168.0, &["car", "truck"])],
            "node-opencv_car1.jpg" => vec![truth(50.0, 198.0, 955.0, 474.0, &["car"])],
            "node-opencv_car2.jpg" => vec![truth(146.0, 337.0, 1388.0, 726.0, &["car"])],
            // Motion-blurred rear of a sedan filling the frame, cut at the bottom.
            "opencv-doc_licenseplate_motion.jpg" => {
                vec![truth(0.0, 32.0, 600.0, 482.0, &["car"])]
            }
            other => panic!("no ground truth for {other}"),
        }
    }

    /// Checks every labelled vehicle is found (IoU >= 0.5, right class) and nothing else scores
    /// >= 0.35 as a vehicle. Returns the score of the best match per vehicle.
    fn check(name: &str, frame: &Frame) -> Vec<f32> {
        let (dets, t) = detector().lock().unwrap().detect(frame).unwrap();
        eprintln!("{name} {:?}: {dets:?} {t:?}", frame.format);
        assert!(t.preprocess_ms > 0.0 && t.inference_ms > 0.0 && t.postprocess_ms >= 0.0);
        let gt = ground_truth(name);
        let mut scores = Vec::new();
        for g in &gt {
            let best = dets
                .iter()
                .filter(|d| g.classes.contains(&d.class) && d.bbox.iou(&g.bbox) >= 0.5)
                .map(|d| d.score)
                .fold(None, |a: Option<f32>, s| Some(a.map_or(s, |a| a.max(s))));
            let best = best.unwrap_or_else(|| panic!("{name}: no detection for {:?}", g.bbox));
            scores.push(best);
        }
        for d in dets.iter().filter(|d| d.score >= 0.35) {
            assert!(
                gt.iter().any(|g| d.bbox.iou(&g.bbox) >= 0.5),
                "{name}: extra vehicle {d:?}"
            );
        }
        scores
    }

    #[test]
    fn finds_the_labelled_vehicles() {
        // Scores published for this model with an FP32 letterbox; resampling differences move
        // them a little, a broken preprocessing moves them a lot.
        for (name, published) in [
            ("darknet_dog.jpg", 0.53),
            ("node-opencv_car1.jpg", 0.44),
            ("node-opencv_car2.jpg", 0.36),
            ("opencv-doc_licenseplate_motion.jpg", 0.51),
        ] {
            let img = image(name);
            let rgb = check(name, &Frame::from_rgb_image("t".into(), 0, 0, &img));
            let yuv = check(name, &i420(&img));
            for s in rgb.into_iter().chain(yuv) {
                assert!(
                    (s - published).abs() < 0.08,
                    "{name}: score {s} vs {published}"
                );
            }
        }
    }

    #[test]
    fn model_id_names_file_and_hash() {
        let det = detector().lock().unwrap();
        let id = det.model_id();
        let (name, hash) = id.split_once('@').unwrap();
        assert_eq!(name, "nanodet-g-416.onnx");
        assert_eq!(hash.len(), 8);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn garbage_or_missing_file_is_a_load_error() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.onnx");
        std::fs::write(&bad, b"this is not a protobuf model \xff\xff\xff").unwrap();
        for model in [bad, dir.path().join("missing.onnx")] {
            let cfg = DetectorConfig { model, ..config() };
            let err = TractDetector::load(&cfg).unwrap_err();
            assert!(matches!(err, DetectError::Load { .. }), "{err}");
        }
    }

    #[test]
    fn unknown_class_backend_or_family_is_rejected() {
        let cfg = DetectorConfig {
            classes: vec!["car".into(), "spaceship".into()],
            ..config()
        };
        let err = TractDetector::load(&cfg).unwrap_err();
        assert!(matches!(&err, DetectError::UnknownClass(c) if c == "spaceship"));
        for (backend, family, what) in [
            ("tensorflow", "nanodet", "backend"),
            ("tract", "ssd", "family"),
        ] {
            let cfg = DetectorConfig {
                backend: backend.into(),
                family: family.into(),
                ..config()
            };
            let Err(err) = open(&cfg) else {
                panic!("{backend}/{family} should be rejected")
            };
            assert!(matches!(err, DetectError::Unsupported { what: w, .. } if w == what));
            assert!(
                err.to_string().contains("\"tract\"") || err.to_string().contains("\"nanodet\"")
            );
        }
    }

    /// Protobuf field with a length-delimited payload.
    fn pb_bytes(out: &mut Vec<u8>, field: u64, payload: &[u8]) {
        pb_varint(out, field << 3 | 2);
        pb_varint(out, payload.len() as u64);
        out.extend_from_slice(payload);
    }

    fn pb_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn pb_uint(out: &mut Vec<u8>, field: u64, v: u64) {
        pb_varint(out, field << 3);
        pb_varint(out, v);
    }

    /// ONNX ValueInfoProto for a float tensor `name` of `shape`.
    fn value_info(name: &str, shape: &[u64]) -> Vec<u8> {
        let mut dims = Vec::new();
        for &d in shape {
            let mut dim = Vec::new();
            pb_uint(&mut dim, 1, d); // dim_value
            pb_bytes(&mut dims, 1, &dim);
        }
        let mut tensor = Vec::new();
        pb_uint(&mut tensor, 1, 1); // elem_type FLOAT
        pb_bytes(&mut tensor, 2, &dims); // shape
        let mut ty = Vec::new();
        pb_bytes(&mut ty, 1, &tensor); // tensor_type
        let mut vi = Vec::new();
        pb_bytes(&mut vi, 1, name.as_bytes());
        pb_bytes(&mut vi, 2, &ty);
        vi
    }

    /// A valid one-node ONNX model (Relu, [1,3,416,416] in and out): loads, but is not NanoDet.
    fn relu_model() -> Vec<u8> {
        let mut node = Vec::new();
        pb_bytes(&mut node, 1, b"data");
        pb_bytes(&mut node, 2, b"output");
        pb_bytes(&mut node, 4, b"Relu");
        let mut graph = Vec::new();
        pb_bytes(&mut graph, 1, &node);
        pb_bytes(&mut graph, 2, b"relu");
        pb_bytes(&mut graph, 11, &value_info("data", &[1, 3, 416, 416]));
        pb_bytes(&mut graph, 12, &value_info("output", &[1, 3, 416, 416]));
        let mut opset = Vec::new();
        pb_bytes(&mut opset, 1, b"");
        pb_uint(&mut opset, 2, 13);
        let mut model = Vec::new();
        pb_uint(&mut model, 1, 7); // ir_version
        pb_bytes(&mut model, 7, &graph);
        pb_bytes(&mut model, 8, &opset);
        model
    }

    #[test]
    fn a_model_that_is_not_nanodet_is_a_layout_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relu.onnx");
        std::fs::write(&path, relu_model()).unwrap();
        let err = TractDetector::load(&DetectorConfig {
            model: path,
            ..config()
        })
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DetectError::Layout { .. }), "{msg}");
        assert!(msg.contains("[1, 3549, 124]"), "{msg}");
    }
}
