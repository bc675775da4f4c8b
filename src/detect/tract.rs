//! The pure-Rust CPU backend: runs an ONNX model with `tract`, so the default build needs no
//! native libraries.
//!
//! [`TractEngine`] only loads and runs the model; the family decoders in
//! [`super::pipeline::ModelDetector`] read its outputs.

use std::collections::BTreeMap;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use super::engine::{Engine, ModelInfo, OutputTensor};
use super::pipeline::input_size_px;
use super::{model_id_of, DetectError, DetectorConfig};

/// An ONNX model on tract's optimized CPU plan, with its input size fixed at load time.
pub struct TractEngine {
    plan: TypedSimpleState,
    info: ModelInfo,
    size: u32,
    model_id: String,
}

impl std::fmt::Debug for TractEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractEngine")
            .field("model_id", &self.model_id)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl TractEngine {
    /// Loads and optimizes the model in `cfg.model` for a fixed square input.
    ///
    /// The input side comes from the model's input shape when fixed, else its `imgsz` metadata,
    /// else `cfg.input_size` (see [`input_size_px`]). [`ModelInfo::metadata`] holds the ONNX
    /// `metadata_props`. Fails with [`DetectError::Load`] when the file cannot be read or parsed
    /// and [`DetectError::Layout`] when it has not exactly one `[1, 3, S, S]` image input; whether
    /// the outputs fit `cfg.family` is checked by [`super::ModelDetector::new`].
    pub fn load(cfg: &DetectorConfig) -> Result<TractEngine, DetectError> {
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
        let onnx = tract_onnx::onnx();
        let not_onnx = |e: TractError| {
            load_err(format!(
                "not a readable ONNX model ({e:#}); point detector model at an .onnx file \
                 such as models/nanodet-g-416.onnx"
            ))
        };
        let proto = onnx
            .proto_model_for_read(&mut bytes.as_slice())
            .map_err(not_onnx)?;
        let metadata: BTreeMap<String, String> = proto
            .metadata_props
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect();
        let model = onnx.model_for_proto_model(&proto).map_err(not_onnx)?;
        drop(proto);
        if model.inputs.len() != 1 {
            return Err(layout_err(format!(
                "expected 1 input [1, 3, S, S], found {}",
                model.inputs.len()
            )));
        }
        let declared = declared_input(&model).map_err(layout_err)?;
        let mut info = ModelInfo {
            input_name: model
                .input_outlets()
                .ok()
                .and_then(|o| o.first().map(|o| model.node(o.node).name.clone()))
                .unwrap_or_default(),
            input_shape: declared,
            outputs: Vec::new(),
            metadata,
        };
        let size = input_size_px(&info, cfg.input_size).map_err(layout_err)?;
        let s = size as usize;
        let typed = model
            .with_input_fact(0, f32::fact([1, 3, s, s]).into())
            .and_then(|m| m.into_optimized())
            .map_err(|e| {
                layout_err(format!(
                    "cannot build a plan for input [1, 3, {size}, {size}] ({e:#}); expected a \
                     {} model with one image input",
                    cfg.family
                ))
            })?;
        info.input_shape = vec![Some(1), Some(3), Some(s), Some(s)];
        info.outputs = output_dims(&typed)
            .map_err(|e| layout_err(format!("cannot read the output shapes ({e:#})")))?;
        let plan = typed
            .into_runnable()
            .and_then(|p| p.spawn())
            .map_err(|e| load_err(format!("cannot prepare the model to run ({e:#})")))?;
        Ok(TractEngine {
            plan,
            info,
            size,
            model_id: model_id_of(&cfg.model, &bytes),
        })
    }

    /// `file-name@hash8` of the loaded file (see [`model_id_of`]).
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Side of the square model input the plan was built for, px.
    pub fn input_size(&self) -> u32 {
        self.size
    }
}

/// The declared input dimensions, None where symbolic; a rank other than 4 or a channel count
/// other than 3 is an error that says what is expected.
fn declared_input(model: &InferenceModel) -> Result<Vec<Option<usize>>, String> {
    let fact = model
        .input_fact(0)
        .map_err(|e| format!("cannot read the input shape ({e:#})"))?;
    if let Some(rank) = fact.shape.rank().concretize() {
        if rank != 4 {
            return Err(format!("input has rank {rank}, expected [1, 3, S, S]"));
        }
    }
    Ok((0..4)
        .map(|i| {
            fact.shape
                .dim(i)
                .and_then(|d| d.concretize())
                .and_then(|d| d.as_i64())
                .and_then(|d| usize::try_from(d).ok())
        })
        .collect())
}

/// Names and dimensions of the plan's outputs, in graph order.
fn output_dims(model: &TypedModel) -> TractResult<Vec<(String, Vec<Option<usize>>)>> {
    model
        .output_outlets()?
        .iter()
        .map(|&o| {
            let name = model
                .outlet_label(o)
                .map(str::to_owned)
                .unwrap_or_else(|| model.node(o.node).name.clone());
            let dims = model
                .outlet_fact(o)?
                .shape
                .to_tvec()
                .iter()
                .map(|d| d.as_i64().and_then(|d| usize::try_from(d).ok()))
                .collect();
            Ok((name, dims))
        })
        .collect()
}

impl Engine for TractEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn run(&mut self, input: &[f32], size: u32) -> Result<Vec<OutputTensor>, DetectError> {
        if size != self.size {
            return Err(DetectError::InputSize {
                expected_px: self.size,
                got_px: size,
            });
        }
        let s = size as usize;
        let failed = |step: String| {
            move |e: TractError| DetectError::Inference {
                step,
                cause: e.into(),
            }
        };
        let tensor = Tensor::from_shape(&[1, 3, s, s], input)
            .map_err(failed("building the input tensor".into()))?;
        let outputs = self
            .plan
            .run(tvec!(tensor.into_tvalue()))
            .map_err(failed("running the model".into()))?;
        outputs
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let name = self
                    .info
                    .outputs
                    .get(i)
                    .map(|(n, _)| n.clone())
                    .unwrap_or_else(|| format!("output{i}"));
                let reading = || failed(format!("reading output {name:?}"));
                let as_f32 = v.cast_to::<f32>().map_err(reading())?;
                let data = as_f32
                    .try_as_plain_ram()
                    .and_then(|p| p.as_slice::<f32>().map(|s| s.to_vec()))
                    .map_err(reading())?;
                Ok(OutputTensor {
                    name,
                    shape: v.shape().to_vec(),
                    data,
                })
            })
            .collect()
    }

    fn provider(&self) -> String {
        "tract-cpu".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{open, BBox, Detector};
    use crate::frame::Frame;
    use std::path::PathBuf;
    use std::sync::{Mutex, OnceLock};

    fn i420(img: &image::RgbImage) -> Frame {
        Frame::i420_from_rgb_image("t".into(), 0, 0, img)
    }

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// The error `open(cfg)` fails with (a detector is not `Debug`, so no `unwrap_err`).
    fn open_err(cfg: &DetectorConfig) -> DetectError {
        match open(cfg) {
            Ok(_) => panic!("{} should not load", cfg.model.display()),
            Err(e) => e,
        }
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
            let err = open_err(&cfg);
            assert!(matches!(err, DetectError::Load { .. }), "{err}");
        }
    }

    #[test]
    fn unknown_class_backend_or_family_is_rejected() {
        let cfg = DetectorConfig {
            classes: vec!["car".into(), "spaceship".into()],
            ..config()
        };
        let err = open_err(&cfg);
        assert!(matches!(&err, DetectError::ClassNotInModel { class, .. } if class == "spaceship"));
        assert!(err.to_string().contains("motorcycle"), "{err}");
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
        value_info_typed(name, shape, 1)
    }

    /// ONNX ValueInfoProto for a tensor `name` of `shape` and element type `elem` (1 FLOAT,
    /// 6 INT32).
    fn value_info_typed(name: &str, shape: &[u64], elem: u64) -> Vec<u8> {
        let mut dims = Vec::new();
        for &d in shape {
            let mut dim = Vec::new();
            pb_uint(&mut dim, 1, d); // dim_value
            pb_bytes(&mut dims, 1, &dim);
        }
        let mut tensor = Vec::new();
        pb_uint(&mut tensor, 1, elem); // elem_type
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

    /// ONNX TensorProto of `data` in `shape` (raw little-endian data), stored as f32 or, when
    /// `int32`, as i32.
    fn tensor_proto(shape: &[u64], data: &[f32], int32: bool) -> Vec<u8> {
        let mut t = Vec::new();
        for &d in shape {
            pb_uint(&mut t, 1, d); // dims
        }
        pb_uint(&mut t, 2, if int32 { 6 } else { 1 }); // data_type INT32 or FLOAT
        let raw: Vec<u8> = if int32 {
            data.iter()
                .flat_map(|&v| (v as i32).to_le_bytes())
                .collect()
        } else {
            data.iter().flat_map(|v| v.to_le_bytes()).collect()
        };
        pb_bytes(&mut t, 9, &raw); // raw_data
        t
    }

    /// A model with a [1, 3, size, size] input "images" whose outputs are constants: each
    /// `(name, shape, data)` is a Constant node. `metadata` goes into `metadata_props`.
    fn constant_model(
        size: u64,
        outputs: &[(&str, Vec<u64>, Vec<f32>)],
        metadata: &[(&str, &str)],
    ) -> Vec<u8> {
        let typed: Vec<_> = outputs
            .iter()
            .map(|(n, s, d)| (*n, s.clone(), d.clone(), false))
            .collect();
        constant_model_typed(size, &typed, metadata)
    }

    /// [`constant_model`] where each output says whether it is INT32 (else FLOAT).
    fn constant_model_typed(
        size: u64,
        outputs: &[(&str, Vec<u64>, Vec<f32>, bool)],
        metadata: &[(&str, &str)],
    ) -> Vec<u8> {
        let mut graph = Vec::new();
        for (name, shape, data, int32) in outputs {
            let mut attr = Vec::new();
            pb_bytes(&mut attr, 1, b"value");
            pb_bytes(&mut attr, 5, &tensor_proto(shape, data, *int32));
            pb_uint(&mut attr, 20, 4); // type TENSOR
            let mut node = Vec::new();
            pb_bytes(&mut node, 2, name.as_bytes());
            pb_bytes(&mut node, 3, format!("const_{name}").as_bytes());
            pb_bytes(&mut node, 4, b"Constant");
            pb_bytes(&mut node, 5, &attr);
            pb_bytes(&mut graph, 1, &node);
        }
        pb_bytes(&mut graph, 2, b"constant");
        pb_bytes(&mut graph, 11, &value_info("images", &[1, 3, size, size]));
        for (name, shape, _, int32) in outputs {
            let elem = if *int32 { 6 } else { 1 };
            pb_bytes(&mut graph, 12, &value_info_typed(name, shape, elem));
        }
        let mut opset = Vec::new();
        pb_bytes(&mut opset, 1, b"");
        pb_uint(&mut opset, 2, 13);
        let mut model = Vec::new();
        pb_uint(&mut model, 1, 7); // ir_version
        pb_bytes(&mut model, 7, &graph);
        pb_bytes(&mut model, 8, &opset);
        for (k, v) in metadata {
            let mut e = Vec::new();
            pb_bytes(&mut e, 1, k.as_bytes());
            pb_bytes(&mut e, 2, v.as_bytes());
            pb_bytes(&mut model, 14, &e);
        }
        model
    }

    /// Writes `model` to a temp file and runs it through `open` + `detect` on a grey 128 x 64
    /// frame (a 64 px input holds the picture at scale 0.5).
    fn detect_with(model: Vec<u8>, cfg: DetectorConfig) -> (Vec<crate::detect::Detection>, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        std::fs::write(&path, model).unwrap();
        let mut det = open(&DetectorConfig { model: path, ..cfg }).unwrap();
        det.warm_up(1).unwrap();
        let img = image::RgbImage::from_pixel(128, 64, image::Rgb([90, 90, 90]));
        let (dets, _) = det
            .detect(&Frame::from_rgb_image("t".into(), 0, 0, &img))
            .unwrap();
        (dets, det.provider())
    }

    fn near(b: &BBox, want: [f32; 4]) -> bool {
        let w = BBox {
            x1: want[0],
            y1: want[1],
            x2: want[2],
            y2: want[3],
        };
        b.iou(&w) > 0.999
    }

    #[test]
    fn yolov8_model_end_to_end() {
        // [1, 7, 10]: one lorry at input (24, 28)-(40, 36); labels and input size from metadata.
        let n = 10;
        let mut data = vec![0.0f32; 7 * n];
        for (row, v) in [32.0, 32.0, 16.0, 8.0, 0.1, 0.9, 0.2]
            .into_iter()
            .enumerate()
        {
            data[row * n + 2] = v;
        }
        let model = constant_model(
            64,
            &[("output0", vec![1, 7, n as u64], data)],
            &[
                ("names", "{0: 'car', 1: 'lorry', 2: 'tractor'}"),
                ("imgsz", "[64, 64]"),
            ],
        );
        let cfg = DetectorConfig {
            family: "yolov8".into(),
            classes: vec!["lorry".into()],
            ..DetectorConfig::default()
        };
        let (dets, provider) = detect_with(model, cfg);
        assert_eq!(provider, "tract-cpu");
        assert_eq!(dets.len(), 1, "{dets:?}");
        assert_eq!((dets[0].class, dets[0].class_id), ("lorry", 1));
        assert!((dets[0].score - 0.9).abs() < 1e-6);
        // Centred: picture rows 16..48 of the input, so frame y = (input y - 16) * 2.
        assert!(near(&dets[0].bbox, [48.0, 24.0, 80.0, 40.0]), "{dets:?}");
    }

    #[test]
    fn yolox_model_end_to_end() {
        // [1, 84, 7]: a truck on the stride-16 head at cell (1, 1): input (8, 12)-(40, 28).
        let mut data = vec![0.0f32; 84 * 7];
        let row = 64 + 4 + 1;
        data[row * 7..row * 7 + 7].copy_from_slice(&[0.5, 0.25, 2f32.ln(), 0.0, 0.9, 0.1, 0.8]);
        let model = constant_model(64, &[("output", vec![1, 84, 7], data)], &[]);
        let cfg = DetectorConfig {
            family: "yolox".into(),
            class_names: Some(vec!["car".into(), "truck".into()]),
            classes: vec!["car".into(), "truck".into()],
            ..DetectorConfig::default()
        };
        let (dets, _) = detect_with(model, cfg);
        assert_eq!(dets.len(), 1, "{dets:?}");
        assert_eq!(dets[0].class, "truck");
        // Top-left placement: frame px = input px * 2.
        assert!(near(&dets[0].bbox, [16.0, 24.0, 80.0, 56.0]), "{dets:?}");
    }

    #[test]
    fn end2end_model_end_to_end() {
        // Ultralytics nms=True: [1, 2, 6], a car at input (10, 20)-(50, 40) and an empty row.
        let data = vec![
            10.0, 20.0, 50.0, 40.0, 0.9, 2.0, //
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        let model = constant_model(64, &[("output0", vec![1, 2, 6], data)], &[]);
        let cfg = DetectorConfig {
            family: "end2end".into(),
            ..DetectorConfig::default()
        };
        let (dets, _) = detect_with(model, cfg);
        assert_eq!(dets.len(), 1, "{dets:?}");
        assert_eq!(dets[0].class, "car");
        assert!(near(&dets[0].bbox, [20.0, 8.0, 100.0, 48.0]), "{dets:?}");
    }

    #[test]
    fn efficient_nms_model_end_to_end() {
        // TensorRT EfficientNMS outputs, listed out of order, counts and classes as INT32:
        // 1 valid detection (a bus at input (10, 20)-(50, 40)) of K = 2.
        let model = constant_model_typed(
            64,
            &[
                ("det_scores", vec![1, 2], vec![0.7, 0.9], false),
                ("num_dets", vec![1, 1], vec![1.0], true),
                ("det_classes", vec![1, 2], vec![5.0, 2.0], true),
                (
                    "det_boxes",
                    vec![1, 2, 4],
                    vec![10.0, 20.0, 50.0, 40.0, 0.0, 0.0, 8.0, 8.0],
                    false,
                ),
            ],
            &[],
        );
        let cfg = DetectorConfig {
            family: "end2end".into(),
            ..DetectorConfig::default()
        };
        let (dets, _) = detect_with(model, cfg);
        assert_eq!(dets.len(), 1, "{dets:?}");
        assert_eq!((dets[0].class, dets[0].score), ("bus", 0.7));
        assert!(near(&dets[0].bbox, [20.0, 8.0, 100.0, 48.0]), "{dets:?}");
    }

    #[test]
    fn metadata_props_reach_model_info() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        let model = constant_model(
            64,
            &[("output0", vec![1, 2, 6], vec![0.0; 12])],
            &[("names", "{0: 'a'}"), ("author", "x")],
        );
        std::fs::write(&path, model).unwrap();
        let engine = TractEngine::load(&DetectorConfig {
            model: path,
            ..DetectorConfig::default()
        })
        .unwrap();
        let info = engine.info();
        assert_eq!(
            info.metadata.get("names").map(String::as_str),
            Some("{0: 'a'}")
        );
        assert_eq!(info.metadata.get("author").map(String::as_str), Some("x"));
        assert_eq!(info.input_shape, [Some(1), Some(3), Some(64), Some(64)]);
        assert_eq!(
            info.outputs,
            [("output0".to_string(), vec![Some(1), Some(2), Some(6)])]
        );
        assert_eq!(engine.input_size(), 64);
    }

    #[test]
    fn a_model_that_is_not_nanodet_is_a_layout_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relu.onnx");
        std::fs::write(&path, relu_model()).unwrap();
        let err = open_err(&DetectorConfig {
            model: path,
            ..config()
        });
        let msg = err.to_string();
        assert!(matches!(err, DetectError::Layout { .. }), "{msg}");
        assert!(msg.contains("[1, 3549, 124]"), "{msg}");
    }
}
