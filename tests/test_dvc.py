"""dvc.yaml against the Kedro catalog (fast), and `dvc repro/push/pull` end to end (integration).

The drift tests read dvc.yaml, the catalog (conf/base) and the stage pipelines, and fail when a
stage declares other files than its pipeline writes, misses a file it reads, a parameter block it
reads, or runs another pipeline. A stage is identified by its nodes' tag (ingest, validate, ...).

The integration tests share ONE temporary git repository made from the working tree and ONE
first `KEDRO_ENV=ci dvc repro` (the expensive part); later tests change a parameter and re-run.
The dataset is COCO128 (../shared) when present, else a synthetic COCO128-format zip; either way
one box is nudged 0.005 outside the image so that `data_validation.tolerance` really changes the
validated labels: within the default tolerance 0.01 it is clipped and kept, with 0.001 dropped
(COCO128's own boxes leave [0, 1] by at most 5e-7, rounding). On clean data no validation
parameter changes the validated tables, and DVC rightly stops the cascade there.
"""

from __future__ import annotations

import ast
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest
import yaml
from kedro.config import OmegaConfigLoader
from kedro.pipeline import Pipeline

from tests.conftest import COCO128_ZIP, PROJECT_ROOT
from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset, zip_dataset
from yolo_mlops.pipeline_registry import STAGES, register_pipelines, stage_pipelines

DVC_YAML = PROJECT_ROOT / "dvc.yaml"
STAGE_TAGS = STAGES
OUT_SECTIONS = ("outs", "metrics", "plots")


# ----------------------------------------------------------------------------- helpers
def _dvc_stages() -> dict[str, dict]:
    return yaml.safe_load(DVC_YAML.read_text())["stages"]


def _paths(entries: list) -> set[str]:
    """Paths of a dvc.yaml list whose items are ``path`` or ``{path: {options}}``."""
    paths = set()
    for entry in entries or []:
        paths.update([entry] if isinstance(entry, str) else entry)
    return {str(PurePosixPath(path)) for path in paths}


def _declared_outputs(stage: dict) -> set[str]:
    return set().union(*(_paths(stage.get(section, [])) for section in OUT_SECTIONS))


def _catalog() -> dict[str, dict]:
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base")
    return dict(loader["catalog"])


def _catalog_path(entry: dict) -> str:
    return str(PurePosixPath(entry.get("filepath") or entry["path"]))


def _stage_tag(pipeline: Pipeline) -> str:
    tags = {tag for node in pipeline.nodes for tag in node.tags} & set(STAGE_TAGS)
    assert len(tags) == 1, f"a stage pipeline's nodes must share one stage tag, got {tags}"
    return tags.pop()


def _stages_by_pipeline() -> dict[str, tuple[str, Pipeline]]:
    """Kedro pipeline name -> (DVC stage name, pipeline)."""
    return {name: (_stage_tag(pipe), pipe) for name, pipe in stage_pipelines().items()}


def _ingest_extras() -> set[str]:
    """The raw archive, the extracted folder and their two JSON records (not catalog datasets)."""
    block = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_data_ingestion.yml").read_text())
    raw = PurePosixPath(block["data_ingestion"]["raw_dir"])
    name = block["data_ingestion"]["name"]
    return {str(raw / path) for path in (f"{name}.zip", f"{name}.zip.json", name)} | {
        str(raw / f"{name}.extracted.json")
    }


def _param_files(env: str, block: str) -> set[str]:
    """conf/<env>/parameters*.yml files that define the top-level ``block``."""
    found = set()
    for path in sorted((PROJECT_ROOT / "conf" / env).glob("parameters*.yml")):
        if block in (yaml.safe_load(path.read_text()) or {}):
            found.add(f"conf/{env}/{path.name}")
    return found


def _tracked_params(stage: dict) -> set[tuple[str, str]]:
    """(file, dotted key) pairs a dvc.yaml stage tracks."""
    tracked = set()
    for entry in stage.get("params", []):
        for path, keys in entry.items():
            tracked.update((path, key) for key in keys)
    return tracked


def _covers(tracked_key: str, read_key: str) -> bool:
    """A tracked key covers a read key when it is the key itself or one of its parents."""
    return read_key == tracked_key or read_key.startswith(f"{tracked_key}.")


def _module_file(module: str) -> Path | None:
    """The source file of a ``yolo_mlops`` module (package → its ``__init__.py``)."""
    base = PROJECT_ROOT / "src" / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_project_files(module: str) -> set[Path]:
    """Every ``yolo_mlops`` source file ``module`` imports, transitively (static, via ``ast``).

    ``from package import name`` counts the submodule ``package.name`` when it exists, else the
    package's ``__init__``; package ``__init__`` files reached only as parents are not followed
    (they hold re-exports, not behaviour).
    """
    seen: set[Path] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        path = _module_file(current)
        if path is None or path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("yolo_mlops")]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("yolo_mlops"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    todo.append(sub if _module_file(sub) else node.module)
    return seen


# ----------------------------------------------------------------------------- drift tests
def drift(stages: dict[str, dict]) -> list[str]:
    """Differences between dvc.yaml ``stages`` and the Kedro stage pipelines + catalog.

    A stage must run its pipeline (cmd) and declare, in outs/metrics/plots together, exactly the
    catalog files its pipeline writes (ingest also the raw archive and extracted folder).
    """
    catalog, problems = _catalog(), []
    by_pipeline = _stages_by_pipeline()
    expected_stages = {stage for stage, _ in by_pipeline.values()}
    if set(stages) != expected_stages:
        problems.append(
            f"stages {sorted(stages)} != stage pipelines' tags {sorted(expected_stages)}"
        )
    for name, (stage, pipeline) in by_pipeline.items():
        if stage not in stages:
            continue
        if stages[stage].get("cmd") != f"python -m kedro run --pipelines {name}":
            problems.append(f"{stage}: cmd {stages[stage].get('cmd')!r} does not run '{name}'")
        written = {_catalog_path(catalog[ds]) for ds in pipeline.all_outputs() if ds in catalog}
        if stage == "ingest":
            written |= _ingest_extras()
        declared = _declared_outputs(stages[stage])
        if declared != written:
            problems.append(
                f"{stage}: missing {sorted(written - declared)}, "
                f"not written by its pipeline {sorted(declared - written)}"
            )
    return problems


def test_dvc_stages_run_their_pipelines_and_declare_the_catalog_files_they_write():
    assert drift(_dvc_stages()) == []
    registered = register_pipelines()
    assert all(name in registered for name in _stages_by_pipeline())


def test_drift_is_reported_for_a_missing_out_an_extra_out_and_a_wrong_cmd():
    stages = _dvc_stages()
    stages["evaluate"]["outs"] = [o for o in stages["evaluate"]["outs"] if "per_class" not in o]
    stages["train"]["outs"].append("data/06_models/extra.pt")
    stages["register"]["cmd"] = "python -m kedro run --pipelines evaluation"
    problems = "\n".join(drift(stages))
    assert "per_class_metrics.csv" in problems
    assert "data/06_models/extra.pt" in problems
    assert "register: cmd" in problems


def test_no_memory_dataset_crosses_a_stage_boundary():
    catalog = _catalog()
    stage_pipes = [pipe for _, pipe in _stages_by_pipeline().values()]
    for pipe in stage_pipes:
        free_inputs = {ds for ds in pipe.inputs() if not ds.startswith("params:")}
        assert free_inputs <= set(catalog), f"inputs without a catalog file: {free_inputs}"


def test_stage_deps_cover_the_catalog_files_it_reads():
    stages, catalog = _dvc_stages(), _catalog()
    for stage, pipeline in _stages_by_pipeline().values():
        deps = _paths(stages[stage].get("deps", []))
        read = {_catalog_path(catalog[ds]) for ds in pipeline.inputs() if ds in catalog}
        assert read <= deps, f"dvc.yaml stage '{stage}' misses deps {sorted(read - deps)}"


def test_stage_deps_exist_or_are_outputs_of_another_stage():
    stages = _dvc_stages()
    produced = set().union(*(_declared_outputs(stage) for stage in stages.values()))
    for name, stage in stages.items():
        for dep in _paths(stage.get("deps", [])):
            assert (PROJECT_ROOT / dep).exists() or dep in produced, f"{name}: no such dep {dep}"


def test_stage_params_track_every_key_its_nodes_read_in_base_and_ci():
    stages = _dvc_stages()
    for stage, pipeline in _stages_by_pipeline().values():
        keys = {ds.removeprefix("params:") for ds in pipeline.inputs() if ds.startswith("params:")}
        tracked = _tracked_params(stages[stage])
        for key in keys:
            block = key.split(".")[0]
            files = _param_files("base", block) | _param_files("ci", block)
            assert files, f"no parameters file defines '{block}'"
            for path in files:
                assert any(p == path and _covers(k, key) for p, k in tracked), (
                    f"dvc.yaml stage '{stage}' does not track {key} in {path}"
                )
        for path, key in tracked:  # dvc fails on a tracked key its file does not define
            value = yaml.safe_load((PROJECT_ROOT / path).read_text())
            for part in key.split("."):
                assert isinstance(value, dict) and part in value, f"{stage}: no {key} in {path}"
                value = value[part]


def test_stage_code_deps_cover_every_module_its_nodes_import():
    stages = _dvc_stages()
    for stage, pipeline in _stages_by_pipeline().values():
        deps = _paths(stages[stage].get("deps", []))
        modules = {node.func.__module__ for node in pipeline.nodes}
        files = set().union(*(_imported_project_files(m) for m in modules))
        for file in sorted(files):
            relative = file.relative_to(PROJECT_ROOT).as_posix()
            if file.name == "__init__.py" and file.stat().st_size < 2000:
                continue  # package markers and re-exports
            if relative.startswith("src/yolo_mlops/tracking/") and stage != "register":
                continue  # logging to MLflow changes no output file of the stage
            assert any(relative == d or relative.startswith(f"{d}/") for d in deps), (
                f"dvc.yaml stage '{stage}' runs code in {relative} but does not depend on it"
            )


def test_stage_code_deps_are_narrow_a_plot_or_preview_change_retrains_nothing():
    deps = {name: _paths(stage.get("deps", [])) for name, stage in _dvc_stages().items()}
    plots = "src/yolo_mlops/yolo/eval/plots.py"
    for stage in ("preprocess", "train"):
        assert not any(plots == d or plots.startswith(f"{d}/") for d in deps[stage]), stage
    preview = {
        (p, k) for p, k in _tracked_params(_dvc_stages()["train"]) if k.startswith("preprocessing")
    }
    assert {k for _, k in preview} == {"preprocessing.augment"}


def _git_ignored(path: str) -> bool:
    check = ["git", "check-ignore", "-q", "--no-index", path]
    return subprocess.run(check, cwd=PROJECT_ROOT, check=False).returncode == 0


def test_gitignore_keeps_dvc_files_visible_and_ignores_every_output():
    visible = {"dvc.yaml", "dvc.lock", "data/01_raw/coco128.zip.dvc", "data/01_raw/.gitignore"}
    assert not [path for path in sorted(visible) if _git_ignored(path)]
    outputs, uncached = set(), set()
    for stage in _dvc_stages().values():
        for section in OUT_SECTIONS:
            for entry in stage.get(section, []):
                path = next(iter(entry)) if isinstance(entry, dict) else entry
                outputs.add(path)
                if isinstance(entry, dict) and entry[path].get("cache") is False:
                    uncached.add(path)
    assert not uncached, "an output git would have to track: every run rewrites it"
    assert [path for path in sorted(outputs) if not _git_ignored(path)] == []


# ----------------------------------------------------------------------------- integration
@dataclass
class DvcProject:
    """A temporary git + DVC repository made from the working tree."""

    root: Path  # holds repo/, remote/, mlflow.db, clones
    repo: Path
    env: dict[str, str]
    first_run: set[str] = field(default_factory=set)  # stages the first `dvc repro` ran

    def run(self, *args: str, cwd: Path | None = None, stdout_only: bool = False) -> str:
        """Run a command in the repo (or ``cwd``); its stdout (+ stderr); fail on an error."""
        result = subprocess.run(
            args,
            check=False,
            cwd=cwd or self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{' '.join(args)} failed:\n{output[-6000:]}"
        return result.stdout if stdout_only else output

    def dvc(self, *args: str, cwd: Path | None = None, stdout_only: bool = False) -> str:
        return self.run(sys.executable, "-m", "dvc", *args, cwd=cwd, stdout_only=stdout_only)

    def repro(self) -> set[str]:
        """`dvc repro`; the names of the stages that ran."""
        return set(re.findall(r"Running stage '([^']+)'", self.dvc("repro")))

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "--allow-empty", "-m", message)


def _copy_working_tree(target: Path) -> None:
    """Tracked and untracked-but-not-ignored files of the checkout (what `git clone` + work)."""
    listing = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listing.split("\0")):
        source = PROJECT_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _nudge_one_box(source: Path, archive: Path) -> Path:
    """Copy a YOLO zip, moving the first box of the first label file 0.005 past the right edge."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as dst:
        nudged = False
        for info in src.infolist():
            data = src.read(info)
            if not nudged and info.filename.endswith(".txt") and "/labels/" in info.filename:
                lines = data.decode().splitlines()
                cls, _, cy, w, h = lines[0].split()
                lines[0] = f"{cls} {1.005 - float(w) / 2:.6f} {cy} {w} {h}"
                data, nudged = ("\n".join(lines) + "\n").encode(), True
            dst.writestr(info, data)
    assert nudged, f"{source} has no label file"
    return archive


def _source_archive(root: Path) -> Path:
    if COCO128_ZIP.is_file():
        return _nudge_one_box(COCO128_ZIP, root / "coco128_nudged.zip")
    dataset = write_synthetic_dataset(root / "synthetic", SyntheticSpec(n_images=16), seed=0)
    plain = zip_dataset(dataset.parent, root / "synthetic.zip", top_level="coco128")
    return _nudge_one_box(plain, root / "synthetic_nudged.zip")


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DvcProject]:
    """The temporary repository after its first `dvc repro` (committed); stages that ran."""
    root = tmp_path_factory.mktemp("dvc")
    repo = root / "repo"
    _copy_working_tree(repo)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "KEDRO_ENV": "ci",
        "YOLO_MLOPS_DATA_SOURCE": str(_source_archive(root)),
        "YOLO_MLOPS_DATA_SHA256": "null",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "OMP_NUM_THREADS": "1",
        "GIT_AUTHOR_NAME": "ci",
        "GIT_AUTHOR_EMAIL": "ci@localhost",
        "GIT_COMMITTER_NAME": "ci",
        "GIT_COMMITTER_EMAIL": "ci@localhost",
    }
    env.pop("MLFLOW_RUN_ID", None)
    project = DvcProject(root, repo, env)
    project.run("git", "init", "-q")
    project.commit("working tree")
    project.dvc("remote", "modify", "--local", "local", "url", str(root / "remote"))
    project.first_run = project.repro()
    project.commit("first dvc repro")
    yield project


def _set_ci_param(project: DvcProject, pipeline: str, key: str, value: str) -> None:
    """Set ``key`` of the ci parameters file of ``pipeline`` (appended or replaced)."""
    path = project.repo / "conf/ci" / f"parameters_{pipeline}.yml"
    text = re.sub(rf"(?m)^  {key}:.*\n", "", path.read_text())
    path.write_text(text.rstrip("\n") + f"\n  {key}: {value}\n")


def _out_files(repo: Path) -> dict[str, Path]:
    """Every file of every declared output (folders expanded), keyed by repo-relative path."""
    files = {}
    for stage in _dvc_stages().values():
        for out in _declared_outputs(stage):
            path = repo / out
            children = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
            files.update({str(child.relative_to(repo)): child for child in children})
    return files


@pytest.mark.integration
def test_first_repro_runs_every_stage(dvc_project):
    assert dvc_project.first_run == set(STAGE_TAGS)


@pytest.mark.integration
def test_second_repro_runs_nothing(dvc_project):
    assert dvc_project.repro() == set()
    assert "up to date" in dvc_project.dvc("status")


@pytest.mark.integration
def test_metrics_show_prints_map_and_plots_show_renders(dvc_project):
    shown = dvc_project.dvc("metrics", "show")
    assert "mAP50-95" in shown and "data/08_reporting/metrics.json" in shown
    # one row of evaluation metrics: the validation summary and the export report are outs
    assert "instances" not in shown and "artifacts" not in shown
    out = dvc_project.root / "plots"
    dvc_project.dvc("plots", "show", "-o", str(out))
    html = (out / "index.html").read_text()
    titles = ("Validation mAP50-95 per epoch", "Training losses per epoch", "Precision-recall")
    assert all(title in html for title in titles)
    assert "datum['class'] === 'all'" in html  # the PR curve's own template
    assert "cdn.jsdelivr" not in html and "vegaEmbed" in html  # renders offline (inlined Vega)
    # Exactly three charts: no default (row index vs last column) rendering of a plots output.
    rendered = json.loads(dvc_project.dvc("plots", "show", "--json", stdout_only=True))["data"]
    assert set(rendered) == {
        "Training losses per epoch",
        "data/08_reporting/training_history.csv",
        "data/08_reporting/pr_curve.csv",
    }


@pytest.mark.integration
def test_push_then_pull_in_a_fresh_clone_restores_outputs_byte_identical(dvc_project):
    dvc_project.dvc("push")
    clone = dvc_project.root / "clone"
    dvc_project.run("git", "clone", "-q", str(dvc_project.repo), str(clone))
    dvc_project.dvc(
        "remote", "modify", "--local", "local", "url", str(dvc_project.root / "remote"), cwd=clone
    )
    dvc_project.dvc("pull", cwd=clone)
    expected = _out_files(dvc_project.repo)
    restored = _out_files(clone)
    assert set(restored) == set(expected)
    assert {"data/06_models/best.pt", "data/01_raw/coco128.zip"} <= set(restored)
    mismatched = [
        name for name in expected if not filecmp.cmp(expected[name], restored[name], shallow=False)
    ]
    assert not mismatched
    assert "up to date" in dvc_project.dvc("status", cwd=clone)


@pytest.mark.integration
def test_training_parameter_change_reruns_train_evaluate_export_register_only(dvc_project):
    _set_ci_param(dvc_project, "training", "epochs", "1")
    assert dvc_project.repro() == {"train", "evaluate", "export", "register"}
    diff = dvc_project.dvc("metrics", "diff", "--all")
    assert "mAP50-95" in diff and "metrics.json" in diff
    assert "training.epochs" in dvc_project.dvc("params", "diff")
    dvc_project.commit("training.epochs=1")


@pytest.mark.integration
def test_validation_parameter_change_reruns_validation_and_downstream(dvc_project):
    _set_ci_param(dvc_project, "data_validation", "tolerance", "0.001")
    assert dvc_project.repro() == {
        "validate", "preprocess", "train", "evaluate", "export", "register"
    }  # fmt: skip
    summary = yaml.safe_load(
        (dvc_project.repo / "data/08_reporting/validation_summary.json").read_text()
    )
    assert summary["rows_dropped_by_code"]  # the nudged box is dropped now
    dvc_project.commit("data_validation.tolerance=0.001")


@pytest.mark.integration
def test_preview_or_plot_changes_retrain_nothing(dvc_project):
    preprocessing = dvc_project.repo / "conf/ci/parameters_preprocessing.yml"
    text = preprocessing.read_text()
    assert "    tile_size: 96\n" in text
    preprocessing.write_text(text.replace("    tile_size: 96\n", "    tile_size: 64\n"))
    # the image cache comes out byte-identical, so nothing downstream of it runs again
    assert dvc_project.repro() == {"preprocess"}
    dvc_project.commit("preprocessing.preview.tile_size=64")
    plots = dvc_project.repo / "src/yolo_mlops/yolo/eval/plots.py"
    plots.write_text(plots.read_text() + "\n# a change to the report plots\n")
    # evaluate re-runs; register follows because it logs evaluate's reports and metrics (whose
    # speed figures differ run to run); nothing that preprocesses, trains or exports runs again
    assert dvc_project.repro() == {"evaluate", "register"}
    dvc_project.commit("plots.py changed")


def test_plots_page_template_renders_offline():
    config = (PROJECT_ROOT / ".dvc/config").read_text()
    assert "html_template = plots/offline.html" in config
    template = (PROJECT_ROOT / ".dvc/plots/offline.html").read_text()
    assert "{plot_divs}" in template and "{scripts}" not in template  # no CDN tags get inserted
    assert not re.search(r"<script[^>]+src=", template)  # every library is inlined
    for library in ("vega@5.20.2", "vega-lite@5.2.0", "vega-embed@6.18.2"):
        assert f"/* {library}.min.js" in template
