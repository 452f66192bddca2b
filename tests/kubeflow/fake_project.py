"""A tiny stand-alone Kedro project (6 stages, JSON datasets) for the Kubeflow compiler tests.

It has the real project's stage tags and parameter keys but trivial nodes, so the compiler and
the local KFP run can be tested in seconds and independently of the real stage pipelines.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from textwrap import dedent

import yaml
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline

PACKAGE = "kfp_fake_project"

REGISTRY = dedent(
    '''
    """Pipelines of the fake project (self-contained: the tests load this file directly)."""

    from kedro.pipeline import Node, Pipeline


    def download(options):
        return {"source": options["source"], "images": 3}


    def validate(manifest):
        return {"ok": manifest["images"] > 0}


    def preprocess(manifest, options):
        return {"imgsz": options["imgsz"], "images": manifest["images"]}


    def fit(cache, options):
        return {"imgsz": cache["imgsz"], "epochs": options["epochs"], "batch": options["batch"],
                "scale": options["scale"]}


    def checkpoint(raw_model):
        return dict(raw_model, saved=True)


    def evaluate(model, summary):
        return {"mAP50": 0.5 if summary["ok"] else 0.0, "epochs": model["epochs"]}


    def register(model, metrics, options):
        return {"model_name": options["model_name"], "mAP50": metrics["mAP50"]}


    def create_pipeline():
        return Pipeline([
            Node(download, "params:data_ingestion", "dataset_manifest", name="download_dataset",
                 tags=["ingest"]),
            Node(validate, "dataset_manifest", "validation_summary", name="validate_labels",
                 tags=["validate"]),
            Node(preprocess, ["dataset_manifest", "params:preprocessing"], "image_cache",
                 name="build_image_cache", tags=["preprocess"]),
            Node(fit, ["image_cache", "params:training"], "raw_model", name="train_model",
                 tags=["train"]),
            Node(checkpoint, "raw_model", "model_checkpoint", name="save_checkpoint",
                 tags=["train"]),
            Node(evaluate, ["model_checkpoint", "validation_summary"], "metrics",
                 name="evaluate_model", tags=["evaluate"]),
            Node(register, ["model_checkpoint", "metrics", "params:register"], "registration",
                 name="register_model", tags=["register"]),
        ])


    def register_pipelines():
        training = create_pipeline()
        data = training.only_nodes_with_tags("ingest", "validate")
        return {"__default__": training, "training": training, "data": data}
    '''
)

CATALOG = {
    name: {"type": "json.JSONDataset", "filepath": f"data/{folder}/{name}.json"}
    for name, folder in {
        "dataset_manifest": "01_raw",
        "validation_summary": "08_reporting",
        "image_cache": "05_model_input",
        "model_checkpoint": "06_models",
        "metrics": "08_reporting",
        "registration": "08_reporting",
    }.items()
}

PARAMETERS = {
    "data_ingestion": {"source": "synthetic.zip"},
    "preprocessing": {"imgsz": 640},
    "training": {"epochs": 100, "batch": 16, "scale": "n"},
    "register": {"model_name": "fake-model"},
}

STAGES = ["ingest", "validate", "preprocess", "train", "evaluate", "register"]
# stage -> upstream stages (Kedro dataset dependencies), in pipeline order
EDGES = {
    "ingest": [],
    "validate": ["ingest"],
    "preprocess": ["ingest"],
    "train": ["preprocess"],
    "evaluate": ["validate", "train"],
    "register": ["train", "evaluate"],
}


def write_fake_project(root: Path) -> Path:
    """Write the project under ``root`` and return ``root``."""
    package = root / "src" / PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""Fake Kedro project for the Kubeflow tests."""\n')
    (package / "settings.py").write_text('"""Defaults."""\n')
    (package / "pipeline_registry.py").write_text(REGISTRY)
    (root / "pyproject.toml").write_text(
        dedent(
            f"""
            [tool.kedro]
            package_name = "{PACKAGE}"
            project_name = "kfp-fake"
            kedro_init_version = "1.7.0"
            source_dir = "src"
            """
        )
    )
    for env in ("base", "local", "ci"):
        (root / "conf" / env).mkdir(parents=True)
    (root / "conf" / "base" / "catalog.yml").write_text(yaml.safe_dump(CATALOG))
    (root / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(PARAMETERS))
    (root / "conf" / "ci" / "parameters.yml").write_text(
        yaml.safe_dump({"preprocessing": {"imgsz": 64}, "training": {"epochs": 1}})
    )
    (root / "data").mkdir()
    return root


def load_fake_pipelines(root: Path) -> dict[str, Pipeline]:
    """Import the written ``pipeline_registry.py`` by path and return its pipelines."""
    path = root / "src" / PACKAGE / "pipeline_registry.py"
    spec = importlib.util.spec_from_file_location(f"{PACKAGE}_registry_{id(root)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.register_pipelines()


def fake_catalog(config: dict | None = None) -> DataCatalog:
    """The fake project's catalog (or ``config`` instead)."""
    return DataCatalog.from_config(CATALOG if config is None else config)
