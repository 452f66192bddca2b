"""The predict pipeline: a folder, glob or list of images → streamed detections, report, images."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from tests.pipelines.predict.helpers import run_predict
from tests.yolo.export.conftest import small_model
from yolo_mlops.pipelines.params import ParameterError
from yolo_mlops.pipelines.predict.predicting import COLUMNS, PredictParams, image_paths
from yolo_mlops.yolo.export.onnx_export import export_onnx
from yolo_mlops.yolo.inference import detect_images, load_detector
from yolo_mlops.yolo.io.checkpoint import make_config, save_checkpoint

SETTINGS = {"conf": 0.05, "chunk_images": 2, "device": "cpu", "imgsz": 64}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five images of three shapes, one unreadable file and a text file in a subfolder."""
    folder = tmp_path_factory.mktemp("incoming")
    rng = np.random.default_rng(0)
    for index, (height, width) in enumerate([(48, 64), (64, 64), (80, 40), (48, 64), (30, 50)]):
        cv2.imwrite(str(folder / f"img{index}.png"), rng.integers(0, 256, (height, width, 3)))
    (folder / "sub").mkdir()
    (folder / "sub" / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "sub" / "notes.txt").write_text("ignored: not an image suffix")
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    model = small_model()
    root = tmp_path_factory.mktemp("models")
    config = make_config(scale="n", nc=3, names=["cat", "dog", "bird"], imgsz=64)
    checkpoint = save_checkpoint(root / "m.pt", state_dict=model.state_dict(), config=config)
    return {"pt": checkpoint, "onnx": export_onnx(model, root / "m.onnx")}


@pytest.mark.parametrize("backend", ["pt", "onnx"])
def test_a_folder_gives_the_detections_of_the_inference_path_in_parquet_parts(
    images, models, tmp_path, backend
):
    parameters = {**SETTINGS, "source": str(images), "model": str(models[backend])}
    out = run_predict(tmp_path, parameters)
    parts = sorted(p.name for p in (out / "detections").iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    table = pd.read_parquet(out / "detections")
    assert list(table.columns) == COLUMNS and len(table) > 0
    report = json.loads((out / "predict.json").read_text())
    assert report["images"] == 5 and report["detections"] == len(table)
    assert report["skipped"] == [
        {"file": str(images / "sub" / "broken.jpg"), "reason": "not a decodable image"}
    ]
    # the same rows as detect_images on each image alone
    model = load_detector(models[backend])
    for path in sorted(images.glob("*.png")):
        found = detect_images(model, [cv2.imread(str(path))], 64, conf=0.05)[0]
        mine = table[table["image"] == str(path)]
        assert mine["class"].tolist() == found.classes.tolist()
        assert mine[["x1", "y1", "x2", "y2"]].to_numpy() == pytest.approx(found.boxes, abs=1e-3)
    assert not (out / "annotated").exists()


def test_a_list_file_and_a_glob_name_images_and_annotated_copies_are_written(
    images, models, tmp_path
):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two images\n{images / 'img0.png'}\n\n{images / 'img2.png'}\n")
    assert image_paths(str(listing)) == [images / "img0.png", images / "img2.png"]
    assert image_paths(str(images / "img[34].png")) == [images / "img3.png", images / "img4.png"]
    parameters = {**SETTINGS, "source": str(listing), "model": str(models["onnx"])}
    out = run_predict(tmp_path / "run", {**parameters, "save_images": True})
    written = sorted(p.name for p in (out / "annotated").iterdir())
    assert written == ["0000000_img0.jpg", "0000001_img2.jpg"]
    assert cv2.imread(str(out / "annotated" / written[1])).shape == (80, 40, 3)


def test_a_rerun_replaces_the_earlier_runs_parts(images, models, tmp_path):
    parameters = {**SETTINGS, "source": str(images), "model": str(models["onnx"])}
    run_predict(tmp_path, {**parameters, "chunk_images": 1})
    run_predict(tmp_path, parameters)
    assert len(list((tmp_path / "detections").glob("part-*.parquet"))) == 3


def test_a_source_without_images_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"predict\.source=.*names no image"):
        image_paths(str(tmp_path / "*.jpg"))


@pytest.mark.parametrize(
    ("parameters", "message"),
    [({"source": ""}, "predict.source is empty"), ({"source": "x", "conf": 1.0}, "conf must"),
     ({"source": "x", "chunk": 3}, r"predict\.chunk"),
     ({"source": "x", "backend": "tensorrt"}, "backend must be one of")],
)  # fmt: skip
def test_invalid_parameters_are_rejected(parameters, message):
    from yolo_mlops.pipelines.params import parse_params

    with pytest.raises(ParameterError, match=message):
        parse_params(PredictParams, parameters, "predict")
