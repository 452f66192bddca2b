"""The pyfunc wrapper in-process: formats, coordinates, bad rows, request limits."""

import base64
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from tests.tracking.helpers import NAMES, synthetic_jpeg
from yolo_mlops.tracking.pyfunc_model import (
    OUTPUT_COLUMNS,
    YoloDetectorModel,
    decode_image,
    request_pixel_budget,
)
from yolo_mlops.yolo.io.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def detector(tmp_path_factory, checkpoint):
    path = save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "m.pt",
        state_dict=checkpoint["state_dict"],
        config=checkpoint["config"],
    )
    model = YoloDetectorModel()
    model.load_context(SimpleNamespace(artifacts={"checkpoint": str(path)}))
    return model


def test_predict_returns_detections_in_original_pixels_per_row(detector):
    images = [synthetic_jpeg(120, 80), synthetic_jpeg(50, 90)]
    out = detector.predict(None, pd.DataFrame({"image": images}), {"conf": 0.0, "max_det": 5})
    assert list(out.columns) == list(OUTPUT_COLUMNS)
    assert sorted(out["image_index"].unique()) == [0, 1]
    assert (out.groupby("image_index").size() == 5).all()
    first, second = out[out.image_index == 0], out[out.image_index == 1]
    assert first[["x1", "x2"]].max().max() <= 120 and first[["y1", "y2"]].max().max() <= 80
    assert second[["x1", "x2"]].max().max() <= 50 and second[["y1", "y2"]].max().max() <= 90
    assert (out[["x1", "y1", "x2", "y2"]] >= 0).all().all()
    assert set(out["class_name"]) <= set(NAMES)
    assert first["score"].is_monotonic_decreasing


def test_predict_with_no_detections_keeps_the_columns_and_types(detector):
    out = detector.predict(None, pd.DataFrame({"image": [synthetic_jpeg()]}), {"conf": 1.0})
    assert out.empty
    assert list(out.columns) == list(OUTPUT_COLUMNS)
    assert out["image_index"].dtype == "int64" and out["score"].dtype == "float64"


def test_predict_names_the_row_that_is_not_an_image(detector):
    frame = pd.DataFrame({"image": [synthetic_jpeg(), b"definitely not a jpeg"]})
    with pytest.raises(MlflowException, match=r"row 1: .*not a decodable image"):
        detector.predict(None, frame)


def test_predict_rejects_input_without_an_image_column(detector):
    with pytest.raises(MlflowException, match="column 'image'"):
        detector.predict(None, pd.DataFrame({"pixels": [b"x"]}))


@pytest.mark.parametrize(
    ("value", "message"),
    [(b"", r"row 3: .*empty"), (12, r"row 3: .*holds int"), ("%%%", r"row 3: .*not a decodable")],
)
def test_decode_image_errors_name_the_row(value, message):
    with pytest.raises(MlflowException, match=message):
        decode_image(value, 3)


def test_decode_image_accepts_base64_text():
    image = decode_image(base64.b64encode(synthetic_jpeg(60, 40)).decode(), 0)
    assert image.shape == (40, 60, 3)


def _huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR announces ``width``x``height`` (a real 1x1 PNG with patched dimensions)."""
    import struct
    import zlib

    import cv2
    import numpy as np

    ok, encoded = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_predict_refuses_an_image_over_the_pixel_limit_before_decoding(detector):
    frame = pd.DataFrame({"image": [synthetic_jpeg(), _huge_png_header(30000, 30000)]})
    with pytest.raises(MlflowException, match=r"row 1: image of 30000x30000 .* max_pixels"):
        detector.predict(None, frame)


def test_pixel_limit_comes_from_the_model_config(checkpoint, tmp_path):
    path = save_checkpoint(
        tmp_path / "m.pt", state_dict=checkpoint["state_dict"], config=checkpoint["config"]
    )
    model = YoloDetectorModel()
    model.load_context(
        SimpleNamespace(artifacts={"checkpoint": str(path)}, model_config={"max_pixels": 1000})
    )
    with pytest.raises(MlflowException, match=r"row 0: image of 60x40 = 2400 pixels .*1000 pixels"):
        model.predict(None, pd.DataFrame({"image": [synthetic_jpeg(60, 40)]}))
    small = model.predict(None, pd.DataFrame({"image": [synthetic_jpeg(30, 30)]}))
    assert list(small.columns) == list(OUTPUT_COLUMNS)


def test_predict_refuses_a_request_over_the_byte_limit(checkpoint, tmp_path):
    path = save_checkpoint(
        tmp_path / "m.pt", state_dict=checkpoint["state_dict"], config=checkpoint["config"]
    )
    model = YoloDetectorModel()
    image = synthetic_jpeg(60, 40)
    model.load_context(
        SimpleNamespace(
            artifacts={"checkpoint": str(path)},
            model_config={"max_request_bytes": 2 * len(image) + 1},
        )
    )
    assert len(model.predict(None, pd.DataFrame({"image": [image] * 2}), {"conf": 0.0}))
    with pytest.raises(MlflowException, match=r"3 rows, over .* max_request_bytes"):
        model.predict(None, pd.DataFrame({"image": [image] * 3}))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"conf": -1.0}, r"conf=-1.0 must be in \[0, 1\]"),
        ({"conf": 1.5}, r"conf=1.5"),
        ({"iou": 0.0}, r"iou=0.0 must be in \(0, 1\]"),
        ({"max_det": 0}, r"max_det=0 must be >= 1"),
    ],
)
def test_predict_refuses_out_of_range_params(detector, params, message):
    with pytest.raises(MlflowException, match=message):
        detector.predict(None, pd.DataFrame({"image": [synthetic_jpeg()]}), params)


def test_decode_image_refuses_bytes_without_a_known_image_header():
    with pytest.raises(MlflowException, match=r"row 2: .*header of a JPEG, PNG"):
        decode_image(b"P6\n30000 30000\n255\n" + b"\0" * 10, 2)


def test_register_params_refuse_out_of_range_predict_defaults_and_limits():
    from yolo_mlops.pipelines.params import ParameterError, parse_params
    from yolo_mlops.pipelines.register.nodes import RegisterParams

    with pytest.raises(ParameterError, match=r"register.predict: .*conf=2.0"):
        parse_params(RegisterParams, {"predict": {"conf": 2.0}}, "register")
    with pytest.raises(ParameterError, match=r"register.serving: .*max_pixels=0"):
        parse_params(RegisterParams, {"serving": {"max_pixels": 0}}, "register")


def _peak_rss_bytes() -> int:
    """This process's peak resident memory (VmHWM), bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    pytest.skip("needs /proc/self/status (Linux)")
    return 0


def _detector_with(checkpoint, tmp_path, **limits) -> YoloDetectorModel:
    path = save_checkpoint(
        tmp_path / "m.pt", state_dict=checkpoint["state_dict"], config=checkpoint["config"]
    )
    model = YoloDetectorModel()
    model.load_context(SimpleNamespace(artifacts={"checkpoint": str(path)}, model_config=limits))
    return model


def test_request_over_the_pixel_budget_is_refused_fast_without_decoding(checkpoint, tmp_path):
    """20 rows of a ~100 KB 6000x6000 PNG (2.2 GB once decoded): refused on the headers."""
    import cv2
    import numpy as np

    model = _detector_with(checkpoint, tmp_path, max_request_pixels=100_000_000)
    ok, png = cv2.imencode(".png", np.zeros((6000, 6000, 3), np.uint8))
    assert ok and png.nbytes < 1_000_000
    frame = pd.DataFrame({"image": [png.tobytes()] * 20})
    del png
    before = _peak_rss_bytes()
    start = time.perf_counter()
    with pytest.raises(MlflowException, match=r"first 3 of 20 rows, .* max_request_pixels"):
        model.predict(None, frame)
    assert time.perf_counter() - start < 1.0
    assert _peak_rss_bytes() - before < 50 * 1024**2


def test_default_request_budget_is_sized_to_the_machine(detector):
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert detector.max_request_pixels == request_pixel_budget() >= 40_000_000
    assert request_pixel_budget(1) == int(memory / 32 / 3)


def test_a_row_that_is_not_base64_is_named(detector):
    good = base64.b64encode(synthetic_jpeg()).decode()
    frame = pd.DataFrame({"image": [good, good, good, "not base64!"]})
    with pytest.raises(MlflowException, match=r"^row 3: .*not base64"):
        detector.predict(None, frame)


def test_register_params_take_a_request_pixel_budget():
    from yolo_mlops.pipelines.params import ParameterError, parse_params
    from yolo_mlops.pipelines.register.nodes import RegisterParams

    assert parse_params(RegisterParams, {}, "register").serving.max_request_pixels is None
    serving = {"serving": {"max_request_pixels": 5_000_000}}
    assert parse_params(RegisterParams, serving, "register").serving.max_request_pixels == 5000000
    with pytest.raises(ParameterError, match=r"max_request_pixels=0"):
        parse_params(RegisterParams, {"serving": {"max_request_pixels": 0}}, "register")


# --- the ONNX Runtime backend -------------------------------------------------------------------


@pytest.fixture(scope="module")
def served_pair(tmp_path_factory):
    """The same small model served by each backend: ``{"torch": ..., "onnxruntime": ...}``."""
    from tests.tracking.export_helpers import export_small_model, small_checkpoint

    folder = tmp_path_factory.mktemp("backends")
    checkpoint = small_checkpoint()
    path = save_checkpoint(
        folder / "model.pt", state_dict=checkpoint["state_dict"], config=checkpoint["config"]
    )
    artifacts = {"checkpoint": str(path), "onnx": str(export_small_model(folder))}
    models = {}
    for backend in ("torch", "onnxruntime"):
        models[backend] = YoloDetectorModel()
        context = SimpleNamespace(artifacts=artifacts, model_config={"backend": backend})
        models[backend].load_context(context)
    return models, artifacts


def _synthetic_jpegs(count: int) -> list[bytes]:
    """JPEGs of random 16-pixel blocks with noise (distinct anchors, no tied scores)."""
    import cv2

    from tests.yolo.export.conftest import synthetic_images

    shapes = [(48, 64), (64, 40), (80, 80), (30, 100)]
    encoded = []
    for index in range(count):
        height, width = shapes[index % len(shapes)]
        image = synthetic_images(1, height, width, seed=index)[0].transpose(1, 2, 0)
        ok, data = cv2.imencode(".jpg", image[..., ::-1])
        assert ok
        encoded.append(data.tobytes())
    return encoded


def _assert_same_detections(torch_out: pd.DataFrame, onnx_out: pd.DataFrame) -> None:
    """Same rows per image and class, matched one to one: each torch detection has its own ONNX
    detection with a box within 0.5 px and a score within 1e-3 (near-equal scores may swap
    places, and a random model's boxes clipped to the image can coincide)."""
    key = ["image_index", "class_id"]
    assert torch_out.groupby(key).size().to_dict() == onnx_out.groupby(key).size().to_dict()
    box = ["x1", "y1", "x2", "y2"]
    for (image, cls), mine in torch_out.groupby(key):
        theirs = onnx_out[(onnx_out.image_index == image) & (onnx_out.class_id == cls)]
        free = set(theirs.index)
        for _, row in mine.iterrows():
            box_gap = (theirs[box] - row[box].to_numpy()).abs().max(axis=1)
            score_gap = (theirs["score"] - row["score"]).abs()
            match = [i for i in theirs.index[(box_gap <= 0.5) & (score_gap <= 1e-3)] if i in free]
            assert match, (image, cls, row.tolist())
            free.discard(match[0])


def test_onnx_served_detections_equal_the_pytorch_path(served_pair):
    models, _ = served_pair
    frame = pd.DataFrame({"image": _synthetic_jpegs(8)})
    for params in ({"conf": 0.25}, {"conf": 0.05, "max_det": 20}):
        torch_out = models["torch"].predict(None, frame, params)
        onnx_out = models["onnxruntime"].predict(None, frame, params)
        assert len(torch_out) > 0 and list(onnx_out.columns) == list(OUTPUT_COLUMNS)
        assert onnx_out.dtypes.to_dict() == torch_out.dtypes.to_dict()
        _assert_same_detections(torch_out, onnx_out)
    assert models["onnxruntime"].names == models["torch"].names == NAMES


def test_onnx_backend_keeps_the_request_limits(served_pair):
    _, artifacts = served_pair
    model = YoloDetectorModel()
    config = {"backend": "onnxruntime", "max_pixels": 1000, "max_request_pixels": 5000}
    model.load_context(SimpleNamespace(artifacts=artifacts, model_config=config))
    with pytest.raises(MlflowException, match=r"row 0: .* 1000 pixels"):
        model.predict(None, pd.DataFrame({"image": [synthetic_jpeg(60, 40)]}))
    with pytest.raises(MlflowException, match=r"max_request_pixels"):
        model.predict(None, pd.DataFrame({"image": [synthetic_jpeg(30, 30)] * 6}))


def test_onnx_backend_without_an_onnx_artifact_says_how_to_fix_it(served_pair):
    _, artifacts = served_pair
    model = YoloDetectorModel()
    context = SimpleNamespace(
        artifacts={"checkpoint": artifacts["checkpoint"]}, model_config={"backend": "onnxruntime"}
    )
    with pytest.raises(MlflowException, match=r"no 'onnx' artifact .*backend': 'torch'"):
        model.load_context(context)
    unknown = SimpleNamespace(artifacts=artifacts, model_config={"backend": "tensorrt"})
    with pytest.raises(MlflowException, match=r"backend='tensorrt' is not one of"):
        model.load_context(unknown)


TORCH_BLOCKED_LOAD = """
import importlib.abc, json, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"the onnxruntime serving path imported {name}")

sys.meta_path.insert(0, NoTorch())
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(pd.DataFrame({"image": [open(sys.argv[2], "rb").read()]}),
                    params={"conf": 0.05})
torch_modules = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))
print(json.dumps({"rows": len(out), "torch": torch_modules}))
"""


def test_the_onnxruntime_pyfunc_loads_and_predicts_with_torch_blocked(served_pair, tmp_path):
    """The model as MLflow saves it (models-from-code, code_paths), loaded where any import
    of torch fails: the serving image needs no torch."""
    import json
    import subprocess
    import sys

    import mlflow

    import yolo_mlops
    from yolo_mlops.tracking.registry import ENTRY_FILE

    _, artifacts = served_pair
    mlflow.pyfunc.save_model(
        tmp_path / "model",
        python_model=str(ENTRY_FILE),
        artifacts={"onnx": artifacts["onnx"]},
        code_paths=[str(Path(yolo_mlops.__file__).parent)],
        model_config={"backend": "onnxruntime"},
    )
    (tmp_path / "image.jpg").write_bytes(_synthetic_jpegs(1)[0])
    done = subprocess.run(
        [sys.executable, "-c", TORCH_BLOCKED_LOAD, tmp_path / "model", tmp_path / "image.jpg"],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rows"] > 0 and result["torch"] == []


def test_register_params_take_a_serving_backend():
    from yolo_mlops.pipelines.params import ParameterError, parse_params
    from yolo_mlops.pipelines.register.nodes import RegisterParams, registration

    settings = parse_params(RegisterParams, {}, "register")
    assert settings.serving.backend == "onnxruntime"
    assert registration(settings).serving_backend == "onnxruntime"
    assert "backend" not in registration(settings).serving_limits
    torch_backend = parse_params(RegisterParams, {"serving": {"backend": "torch"}}, "register")
    assert registration(torch_backend).serving_backend == "torch"
    with pytest.raises(ParameterError, match=r"register.serving.*backend"):
        parse_params(RegisterParams, {"serving": {"backend": "tensorrt"}}, "register")
