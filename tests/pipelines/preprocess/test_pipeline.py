"""The preprocessing pipeline on a synthetic dataset (and on COCO128 where present)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from PIL import Image

from tests.pipelines.preprocess.helpers import synthetic_tables
from yolo_mlops.ingestion.tables import dataset_tables
from yolo_mlops.pipelines.params import ParameterError
from yolo_mlops.pipelines.preprocess import create_pipeline
from yolo_mlops.pipelines.preprocess.nodes import build_image_cache
from yolo_mlops.yolo.data import image_cache as image_cache_module

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def _catalog(tmp_path: Path, tables, parameters: dict, seed: int = 0) -> DataCatalog:
    catalog = DataCatalog.from_config(
        {
            "image_cache": {
                "type": "yolo_mlops.datasets.image_cache_dataset.ImageCacheDataset",
                "path": str(tmp_path / "data/05_model_input/image_cache"),
            },
            "mosaic_preview": {
                "type": "pillow.ImageDataset",
                "filepath": str(tmp_path / "data/08_reporting/mosaic_preview.png"),
            },
        }
    )
    for name, value in zip(("image_index", "clean_labels", "dataset_spec"), tables, strict=True):
        catalog[name] = MemoryDataset(value)
    catalog["params:preprocessing"] = MemoryDataset(parameters)
    catalog["params:training.seed"] = MemoryDataset(seed)
    return catalog


def test_pipeline_builds_cache_and_preview_and_reuses_the_cache(tmp_path, monkeypatch):
    tables = synthetic_tables(tmp_path / "raw")
    raw_files = sorted(p for p in (tmp_path / "raw").rglob("*") if p.is_file())
    calls = []
    real_decode = image_cache_module.decode_image
    monkeypatch.setattr(
        image_cache_module, "decode_image", lambda file: calls.append(file) or real_decode(file)
    )
    parameters = {"imgsz": 64, "preview": {"tile_size": 64}}
    SequentialRunner().run(create_pipeline(), _catalog(tmp_path, tables, parameters))
    assert len(calls) == 8
    preview = Image.open(tmp_path / "data/08_reporting/mosaic_preview.png")
    assert preview.size == (4 * 64, 2 * 64)  # 8 images -> batch of 8 in a 4-column grid
    assert (tmp_path / "data/05_model_input/image_cache/meta.json").is_file()
    assert np.asarray(preview).std() > 0
    SequentialRunner().run(create_pipeline(), _catalog(tmp_path, tables, parameters))
    assert len(calls) == 8, "an unchanged dataset must not be decoded again"
    assert sorted(p for p in (tmp_path / "raw").rglob("*") if p.is_file()) == raw_files


def test_preview_is_deterministic_for_a_seed(tmp_path):
    tables = synthetic_tables(tmp_path / "raw")
    images = []
    for run, seed in enumerate((0, 0, 1)):
        out = tmp_path / f"run{run}"
        SequentialRunner().run(create_pipeline(), _catalog(out, tables, {"imgsz": 64}, seed=seed))
        images.append(np.asarray(Image.open(out / "data/08_reporting/mosaic_preview.png")))
    np.testing.assert_array_equal(images[0], images[1])
    assert not np.array_equal(images[0], images[2])


def test_bad_parameters_name_the_key(tmp_path):
    tables = synthetic_tables(tmp_path / "raw")
    with pytest.raises(ParameterError, match=r"preprocessing\.augment\.mosiac"):
        build_image_cache(*tables, {"augment": {"mosiac": 1.0}})
    with pytest.raises(ParameterError, match="imgsz"):
        build_image_cache(*tables, {"imgsz": 100})


def test_conf_parameters_parse():
    from yolo_mlops.pipelines.params import parse_params
    from yolo_mlops.pipelines.preprocess.nodes import PreprocessingParams

    for env in ("base", "ci"):
        block = yaml.safe_load(
            (PROJECT_ROOT / f"conf/{env}/parameters_preprocessing.yml").read_text()
        )
        params = parse_params(PreprocessingParams, block["preprocessing"], "preprocessing")
        assert params.imgsz in (640, 96)


@pytest.mark.coco128
@pytest.mark.integration
def test_pipeline_on_coco128(tmp_path, coco128_zip):
    with zipfile.ZipFile(coco128_zip) as archive:
        archive.extractall(tmp_path / "raw")
    root = next(p.parent.parent for p in (tmp_path / "raw").rglob("images/train2017"))
    dataset_yaml = root / "coco128.yaml"
    names = [f"class{i}" for i in range(80)]
    dataset_yaml.write_text(
        yaml.safe_dump(
            {"path": ".", "train": "images/train2017", "val": "images/train2017", "names": names}
        )
    )
    tables = dataset_tables(dataset_yaml)
    assert len(tables[0]) == 256 and len(tables[1]) == 2 * 929
    SequentialRunner().run(
        create_pipeline(), _catalog(tmp_path, tables, {"imgsz": 128, "preview": {"tile_size": 128}})
    )
    cache = image_cache_module.ImageCache.open(tmp_path / "data/05_model_input/image_cache")
    assert len(cache) == 128 and sum(len(cache.classes(i)) for i in range(128)) == 929
    assert Image.open(tmp_path / "data/08_reporting/mosaic_preview.png").size == (512, 512)


def test_preprocessing_consumes_the_data_validation_tables(tmp_path, synthetic_dataset):
    from yolo_mlops.ingestion.dataset_yaml import parse_dataset_yaml
    from yolo_mlops.pipelines.validate.nodes import validate_labels

    spec = parse_dataset_yaml(synthetic_dataset).to_dict()
    clean_labels, image_index, *_ = validate_labels(spec, {"workers": 1, "progress": False})
    source = build_image_cache(image_index, clean_labels, spec, {"imgsz": 64})
    cache = source.materialise(tmp_path / "cache")
    assert len(cache) == 8 and sorted(cache.splits) == ["train", "val"]
    assert sum(len(cache.classes(i)) for i in range(8)) == len(clean_labels) // 2


def test_pipeline_runs_with_memory_datasets_only(tmp_path):
    catalog = DataCatalog()
    for name, value in zip(
        ("image_index", "clean_labels", "dataset_spec"), synthetic_tables(tmp_path), strict=True
    ):
        catalog[name] = MemoryDataset(value)
    catalog["params:preprocessing"] = MemoryDataset({"imgsz": 64, "preview": {"tile_size": 32}})
    catalog["params:training.seed"] = MemoryDataset(0)
    out = SequentialRunner().run(create_pipeline(), catalog)
    assert out["mosaic_preview"].load().size == (128, 64)
    assert list(tmp_path.rglob("pixels.bin")) == []


def test_rotated_tiff_is_cached_at_its_validated_size(tmp_path):
    from yolo_mlops.ingestion.dataset_yaml import parse_dataset_yaml
    from yolo_mlops.pipelines.validate.nodes import validate_labels

    root = tmp_path / "ds"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 255, (60, 100, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "images" / "train" / "r.tif", tiffinfo={0x0112: 6})
    (root / "labels" / "train" / "r.txt").write_text("0 0.5 0.5 0.4 0.2\n")
    (root / "d.yaml").write_text("train: images/train\nval: images/train\nnames: [a]\n")
    spec = parse_dataset_yaml(root / "d.yaml").to_dict()
    clean_labels, image_index, *_ = validate_labels(spec, {"workers": 1, "progress": False})
    assert image_index[["width", "height"]].drop_duplicates().values.tolist() == [[60, 100]]
    cache = build_image_cache(image_index, clean_labels, spec, {"imgsz": 64}).materialise(
        tmp_path / "cache"
    )
    assert cache.orig_shape(0) == (100, 60) and cache.image(0).shape == (64, 39, 3)
