"""The pyfunc wrapper in-process: formats, coordinates, bad rows."""

from types import SimpleNamespace

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from tests.tracking.helpers import NAMES, synthetic_jpeg
from yolo_mlops.tracking.pyfunc_model import OUTPUT_COLUMNS, YoloDetectorModel, decode_image
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
    import base64

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
