#!/usr/bin/env python3
"""Make site-specific INT8 versions of the speedcam detector from frames of your own camera.

INT8 needs calibration: the range of every activation on pictures like the ones the model will
see. The bundled INT8 models were calibrated on generic still images; frames from the camera
that will run the model (its angle, lighting, night/day) give ranges that fit your scene.

Outputs, in --out-dir (default: next to the model):
  <stem>.int8-qdq-u8.onnx      INT8 QDQ, U8 activations, per-channel S8 weights: for the ONNX
                               Runtime CPU provider (detector.backend = "onnxruntime",
                               providers = ["cpu"]). NOT for TensorRT.
  <stem>.int8-qdq-s8sym.onnx   INT8 QDQ, symmetric S8 activations and weights (TensorRT's
                               explicit-quantization style): providers = ["tensorrt", ...] with
                               precision = "int8", or trtexec --int8.
  calibration.flatbuffers      TensorRT calibration table in ONNX Runtime's format for the FP32
                               model: [detector.onnxruntime] int8_calibration_table with
                               precision = "int8" (ONNX Runtime's TensorRT provider reads it).
  calibration.json, .cache     the same ranges as JSON and as "tensor max" text lines, for
                               inspection. Neither is TensorRT's native cache (trtexec --calib
                               wants one written by TensorRT's own calibrator).

Frames: 50-500 JPEG/PNG files from the camera, covering the conditions it sees (day, night,
rain, traffic and empty road). Either grab them with the daemon:

    for i in $(seq 1 100); do
      speedcamd snapshot --config /etc/speedcam/speedcam.toml --camera cam1 --out frames/$i.jpg
      sleep 60
    done

or extract them from a recording (one frame every 2 s):

    ffmpeg -i recording.mp4 -vf fps=0.5 -q:v 2 frames/%04d.jpg

Then (Python 3.9+; the packages are in models/requirements.txt):

    python3 -m venv /tmp/q && /tmp/q/bin/pip install -r models/requirements.txt
    /tmp/q/bin/python models/make_int8.py --model models/nanodet-g-416.onnx --frames frames/

Preprocessing is NanoDet's, exactly as the daemon does it (src/detect/letterbox.rs): letterbox
to a square of the model's input size (aspect kept, centred, border 0 after normalisation),
BGR channel order, (pixel - [103.53, 116.28, 123.675]) / [57.375, 57.12, 58.395] per channel.
The decode tail of the graph (Split / Sigmoid / Reshape / Transpose / Concat after the head
convolutions) stays float: it carries scores and box distributions that INT8 would coarsen.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from PIL import Image
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    create_calibrator,
    quantize_static,
    write_calibration_table,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

# NanoDet normalisation, per channel in tensor order B, G, R (models/README.md).
MEAN_BGR = np.array([103.53, 116.28, 123.675], dtype=np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], dtype=np.float32)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def letterbox(path: Path, size: int) -> np.ndarray:
    """One frame as the model input: float32 [1, 3, size, size], BGR, normalised, letterboxed."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    scale = min(size / w, size / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = np.asarray(img.resize((nw, nh), Image.BILINEAR), dtype=np.float32)
    bgr = resized[:, :, ::-1]
    out = np.zeros((size, size, 3), dtype=np.float32)  # 0 after normalisation = the mean colour
    x0, y0 = (size - nw) // 2, (size - nh) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = (bgr - MEAN_BGR) / STD_BGR
    return out.transpose(2, 0, 1)[None].copy()


class FrameReader(CalibrationDataReader):
    """Feeds the calibration frames to ONNX Runtime, one letterboxed tensor at a time."""

    def __init__(self, frames: list[Path], input_name: str, size: int):
        self.frames, self.input_name, self.size = frames, input_name, size
        self.rewind()

    def get_next(self):
        path = next(self.it, None)
        return None if path is None else {self.input_name: letterbox(path, self.size)}

    def rewind(self):
        self.it = iter(self.frames)


def model_input(model: onnx.ModelProto, size_arg: int | None) -> tuple[str, int]:
    """The image input's name and square side (from the model, else --size)."""
    inp = model.graph.input[0]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    if len(dims) != 4 or (dims[1] not in (None, 3)):
        sys.exit(f"error: input {inp.name} has shape {dims}, expected [1, 3, S, S]")
    if dims[2] and dims[3]:
        if dims[2] != dims[3]:
            sys.exit(f"error: input is {dims[3]}x{dims[2]}, expected a square input")
        return inp.name, dims[2]
    if not size_arg:
        sys.exit("error: the model's input size is not fixed: pass --size (a multiple of 32)")
    return inp.name, size_arg


def decode_tail(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes after the head convolutions (everything downstream of a Split):
    left float in the QDQ models."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    tail: dict[str, None] = {}
    todo = [n for n in model.graph.node if n.op_type == "Split"]
    while todo:
        n = todo.pop()
        if n.name in tail:
            continue
        tail[n.name] = None
        for o in n.output:
            todo.extend(consumers.get(o, []))
    return list(tail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=Path("models/nanodet-g-416.onnx"), help="FP32 ONNX model")
    ap.add_argument("--frames", type=Path, required=True, help="folder of JPEG/PNG frames from the camera")
    ap.add_argument("--out-dir", type=Path, help="where to write the outputs (default: the model's folder)")
    ap.add_argument("--size", type=int, help="input side, px, when the model does not fix it")
    ap.add_argument("--max-frames", type=int, default=500, help="use at most this many frames (evenly spread)")
    ap.add_argument(
        "--method",
        choices=["minmax", "entropy", "percentile"],
        default="minmax",
        help="calibration method for the QDQ models (minmax is robust for few frames)",
    )
    ap.add_argument("--skip-trt-table", action="store_true", help="do not write the TensorRT calibration table")
    args = ap.parse_args()

    frames = sorted(p for p in args.frames.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not frames:
        sys.exit(f"error: no .jpg/.png frames in {args.frames}")
    if len(frames) > args.max_frames:
        step = len(frames) / args.max_frames
        frames = [frames[int(i * step)] for i in range(args.max_frames)]
    if len(frames) < 20:
        print(f"warning: only {len(frames)} frames; 50-500 from varied conditions calibrate better", file=sys.stderr)

    out_dir = args.out_dir or args.model.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.model.name.removesuffix(".onnx")
    model = onnx.load(str(args.model))
    input_name, size = model_input(model, args.size)
    exclude = decode_tail(model)
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[args.method]
    print(f"{len(frames)} frames, input {input_name} [1,3,{size},{size}], {len(exclude)} decode nodes left float")

    t_all = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # Shape inference and graph optimisation first, as ONNX Runtime recommends for QDQ.
        quant_pre_process(str(args.model), str(pre), skip_symbolic_shape=True)
        variants = [
            ("int8-qdq-u8", QuantType.QUInt8, {}),
            ("int8-qdq-s8sym", QuantType.QInt8, {"ActivationSymmetric": True, "WeightSymmetric": True}),
        ]
        for suffix, act_type, extra in variants:
            t0 = time.monotonic()
            out = out_dir / f"{stem}.{suffix}.onnx"
            quantize_static(
                str(pre),
                str(out),
                FrameReader(frames, input_name, size),
                quant_format=QuantFormat.QDQ,
                activation_type=act_type,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibrate_method=method,
                nodes_to_exclude=exclude,
                extra_options=extra,
            )
            print(f"wrote {out} ({out.stat().st_size:,} bytes, {time.monotonic() - t0:.1f} s)")

        if not args.skip_trt_table:
            # TensorRT calibrates the FP32 model it is given, so the table is keyed by that
            # model's tensor names (not the pre-processed copy's).
            t0 = time.monotonic()
            calibrator = create_calibrator(
                str(args.model),
                [],
                augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                calibrate_method=CalibrationMethod.MinMax,
            )
            calibrator.set_execution_providers(["CPUExecutionProvider"])
            calibrator.collect_data(FrameReader(frames, input_name, size))
            ranges = calibrator.compute_data()
            table = dict(ranges.items()) if hasattr(ranges, "items") else ranges
            write_calibration_table(table, dir=str(out_dir))
            for name in ("calibration.flatbuffers", "calibration.json", "calibration.cache"):
                if not (out_dir / name).is_file():
                    sys.exit(f"error: {name} was not written")
            print(f"wrote {out_dir}/calibration.flatbuffers ({time.monotonic() - t0:.1f} s)")
    print(f"done in {time.monotonic() - t_all:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
