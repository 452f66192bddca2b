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
