//! Model families: how each one's input is filled and how its output tensors are read.
//!
//! A family is independent of the backend that runs the model: [`super::pipeline::ModelDetector`]
//! pairs any [`super::engine::Engine`] with a [`Family`].

use super::decode_util::label;
use super::engine::{OutputTensor, PreprocessSpec};
use super::{end2end, nanodet, yolov8, yolox, DetectError, Detection, FAMILIES};

/// An output layout family a detector can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// NanoDet GFL head: `[1, rows, 80 + 4 * 11]` (the bundled default model).
    NanoDet,
    /// YOLOv8 / YOLO11 (Ultralytics): `[1, 4 + C, N]` or `[1, N, 4 + C]`, no objectness.
    YoloV8,
    /// YOLOX (official export, decode in inference off): `[1, N, 5 + C]` raw per grid cell.
    Yolox,
    /// Models with NMS inside the graph: TensorRT EfficientNMS (4 outputs) or Ultralytics
    /// `nms=True` (`[1, K, 6]`).
    End2End,
}

impl Family {
    /// Every family, in the order of [`FAMILIES`].
    pub const ALL: [Family; 4] = [
        Family::NanoDet,
        Family::YoloV8,
        Family::Yolox,
        Family::End2End,
    ];

    /// The family named `name` (`detector.family`); unknown names are
    /// [`DetectError::Unsupported`] listing [`FAMILIES`].
    pub fn from_name(name: &str) -> Result<Family, DetectError> {
        Family::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| DetectError::Unsupported {
                what: "family",
                got: name.to_string(),
                allowed: &FAMILIES,
            })
    }

    /// The config name of the family, e.g. `"yolov8"`.
    pub fn name(self) -> &'static str {
        match self {
            Family::NanoDet => "nanodet",
            Family::YoloV8 => "yolov8",
            Family::Yolox => "yolox",
            Family::End2End => "end2end",
        }
    }

    /// How the family's input tensor is filled (channel order, normalisation, border).
    pub fn preprocess(self) -> PreprocessSpec {
        match self {
            Family::NanoDet => PreprocessSpec::NANODET,
            Family::YoloV8 => PreprocessSpec::YOLOV8,
            Family::Yolox => PreprocessSpec::YOLOX,
            Family::End2End => PreprocessSpec::END2END,
        }
    }

    /// True when the decoded candidates still need NMS (false for end-to-end models, whose graph
    /// already ran it).
    pub fn needs_nms(self) -> bool {
        self != Family::End2End
    }

    /// Checks the model's declared outputs (names and dimensions, None where symbolic) against
    /// the family for a square `input_size_px` input. Returns the class count the layout implies
    /// (None when the layout does not say, as for end-to-end models), or why it does not match.
    pub fn check_outputs(
        self,
        outputs: &[(String, Vec<Option<usize>>)],
        input_size_px: u32,
    ) -> Result<Option<usize>, String> {
        match self {
            Family::NanoDet => nanodet::check_outputs(outputs, input_size_px).map(Some),
            Family::YoloV8 => yolov8::check_outputs(outputs),
            Family::Yolox => yolox::check_outputs(outputs, input_size_px),
            Family::End2End => end2end::check_outputs(outputs).map(|_| None),
        }
    }

    /// Decodes one run's `outputs` into candidates in input px. Each candidate's class is the best
    /// of the `wanted` class ids (indices into `labels`) and scores at least `score_threshold`.
    pub fn decode(
        self,
        outputs: &[OutputTensor],
        input_size_px: u32,
        labels: &[&'static str],
        wanted: &[u16],
        score_threshold: f32,
    ) -> Result<Vec<Detection>, DetectError> {
        match self {
            Family::NanoDet => {
                let out = outputs.first().ok_or(DetectError::OutputCount {
                    family: "nanodet",
                    expected: 1,
                    got: 0,
                })?;
                let mut dets = nanodet::decode(&out.data, input_size_px, wanted, score_threshold)?;
                for d in &mut dets {
                    d.class = label(labels, d.class_id);
                }
                Ok(dets)
            }
            Family::YoloV8 => {
                let out = single(outputs, "yolov8")?;
                yolov8::decode(out, labels, wanted, score_threshold)
            }
            Family::Yolox => {
                let out = single(outputs, "yolox")?;
                yolox::decode(out, input_size_px, labels, wanted, score_threshold)
            }
            Family::End2End => end2end::decode(outputs, labels, wanted, score_threshold),
        }
    }
}

/// The only output of a single-output family.
fn single<'a>(
    outputs: &'a [OutputTensor],
    family: &'static str,
) -> Result<&'a OutputTensor, DetectError> {
    match outputs {
        [one] => Ok(one),
        _ => Err(DetectError::OutputCount {
            family,
            expected: 1,
            got: outputs.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_families() {
        for (f, n) in Family::ALL.into_iter().zip(FAMILIES) {
            assert_eq!(f.name(), n);
            assert_eq!(Family::from_name(n).unwrap(), f);
        }
        let e = Family::from_name("ssd").unwrap_err().to_string();
        assert!(e.contains("\"ssd\"") && e.contains("\"yolox\""), "{e}");
    }

    #[test]
    fn specs_are_the_published_ones() {
        let y = Family::YoloV8.preprocess();
        assert!(!y.bgr && y.std == [255.0; 3] && y.pad_value == 114.0 && y.centred);
        let x = Family::Yolox.preprocess();
        assert!(x.bgr && x.std == [1.0; 3] && x.mean == [0.0; 3] && !x.centred);
        assert_eq!(Family::End2End.preprocess(), y);
        assert!(Family::NanoDet.preprocess().bgr);
        assert!(!Family::End2End.needs_nms() && Family::YoloV8.needs_nms());
    }
}
