"""Ultralytics-style dataset YAML files, parsed into a typed :class:`DatasetSpec`.

Accepted forms: ``names`` as a list or an ``{int: name}`` map; optional ``nc`` (must agree);
``path`` absolute or relative to the YAML; ``train``/``val``/``test`` each a directory (searched
recursively), a ``.txt`` file listing image paths (relative entries are relative to the ``.txt``
file's folder), or a list of those; ``test`` is optional. The YAML is read with the safe
loader (libyaml's C one when available) and nothing in it is ever executed: a ``download:``
script is ignored. A dataset YAML is a few kB; files over :data:`MAX_YAML_BYTES` are refused
before parsing (a 50 MB YAML takes minutes and GBs to parse).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm"}
)
SPLITS = ("train", "val", "test")
MAX_YAML_BYTES = 1024 * 1024
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DatasetYamlError(ValueError):
    """The dataset YAML is malformed or points at missing data."""


def shipped_yaml(name: str) -> Path:
    """Path of a dataset YAML shipped with the package (``"coco128"`` -> ``configs/...``)."""
    path = Path(str(resources.files("yolo_mlops.ingestion") / "configs" / f"{name}.yaml"))
    if not path.is_file():
        raise DatasetYamlError(f"no dataset YAML named {name!r} ships with yolo_mlops ({path})")
    return path


def label_path(image_path: Path) -> Path:
    """The label file of an image: last ``/images/`` -> ``/labels/``, suffix ``.txt``."""
    parts = list(image_path.parts)
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset description.

    Attributes:
        name: dataset name (e.g. ``"coco128"``).
        root: absolute dataset root.
        yaml: the YAML it came from.
        names: class names, index = class id.
        splits: split name -> absolute image paths (sorted; ``test`` may be absent).
    """

    name: str
    root: Path
    yaml: Path
    names: tuple[str, ...]
    splits: dict[str, tuple[Path, ...]] = field(default_factory=dict)

    @property
    def nc(self) -> int:
        """Number of classes."""
        return len(self.names)

    def to_dict(self, relative_to: Path | None = None) -> dict[str, Any]:
        """JSON-ready form; paths are made relative to ``relative_to`` when inside it."""

        def portable(path: Path) -> str:
            if relative_to is not None and path.is_relative_to(relative_to):
                return path.relative_to(relative_to).as_posix()
            return path.as_posix()

        return {
            "name": self.name,
            "root": portable(self.root),
            "yaml": portable(self.yaml),
            "names": list(self.names),
            "nc": self.nc,
            "splits": {split: [portable(p) for p in paths] for split, paths in self.splits.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Path | None = None) -> DatasetSpec:
        """Inverse of :meth:`to_dict`; relative paths are resolved against ``base``."""
        base = Path(base or Path.cwd())

        def absolute(value: str) -> Path:
            path = Path(value)
            return path if path.is_absolute() else base / path

        names = tuple(data["names"])
        if int(data.get("nc", len(names))) != len(names):
            raise DatasetYamlError(f"dataset spec: nc={data['nc']} but {len(names)} names")
        return cls(
            name=str(data["name"]),
            root=absolute(data["root"]),
            yaml=absolute(data["yaml"]),
            names=names,
            splits={s: tuple(absolute(p) for p in paths) for s, paths in data["splits"].items()},
        )


def _parse_names(config: dict[str, Any], source: Path) -> tuple[str, ...]:
    if "names" not in config or config["names"] is None:
        raise DatasetYamlError(
            f"{source}: missing 'names' (a list of class names or an {{id: name}} map)"
        )
    raw = config["names"]
    if isinstance(raw, dict):
        keys = list(raw)
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in keys):
            raise DatasetYamlError(f"{source}: 'names' map keys must be integers, got {keys[:5]}")
        if sorted(keys) != list(range(len(keys))):
            raise DatasetYamlError(
                f"{source}: 'names' map keys must be 0..{len(keys) - 1} without gaps"
            )
        values = [raw[k] for k in range(len(keys))]
    elif isinstance(raw, list):
        values = raw
    else:
        raise DatasetYamlError(
            f"{source}: 'names' must be a list or a map, got {type(raw).__name__}"
        )
    for index, value in enumerate(values):
        if not isinstance(value, str) or not value:
            raise DatasetYamlError(
                f"{source}: names[{index}] is {value!r}; "
                "class names must be non-empty strings (quote them)"
            )
    seen: dict[str, int] = {}
    for index, value in enumerate(values):
        if value in seen:
            raise DatasetYamlError(
                f"{source}: duplicate class name {value!r} (ids {seen[value]} and {index})"
            )
        seen[value] = index
    if "nc" in config and config["nc"] is not None:
        nc = config["nc"]
        if isinstance(nc, bool) or not isinstance(nc, int) or nc != len(values):
            raise DatasetYamlError(
                f"{source}: nc={nc!r} disagrees with the {len(values)} entries of 'names'"
            )
    if not values:
        raise DatasetYamlError(f"{source}: 'names' is empty")
    return tuple(values)


def _images_in(entry: Path, split: str, source: Path) -> list[Path]:
    if entry.is_dir():
        return [p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if entry.is_file() and entry.suffix == ".txt":
        images = []
        for raw_line in entry.read_text(encoding="utf-8").splitlines():
            if line := raw_line.strip():
                path = Path(line)
                images.append(path if path.is_absolute() else (entry.parent / path))
        missing = [p for p in images if not p.is_file()]
        if missing:
            raise DatasetYamlError(
                f"{source}: split {split!r}: {len(missing)} image(s) listed in {entry} "
                f"do not exist, "
                f"e.g. {missing[0]}"
            )
        return images
    if entry.is_file():
        raise DatasetYamlError(
            f"{source}: split {split!r}: {entry} is neither a folder nor a .txt list"
        )
    raise DatasetYamlError(f"{source}: split {split!r}: path {entry} does not exist")


def _split_images(value: Any, split: str, root: Path, source: Path) -> tuple[Path, ...]:
    entries = value if isinstance(value, list) else [value]
    images: set[Path] = set()
    for entry in entries:
        if not isinstance(entry, str) or not entry:
            raise DatasetYamlError(
                f"{source}: split {split!r} entries must be path strings, got {entry!r}"
            )
        path = Path(entry).expanduser()
        images.update(
            Path(os.path.abspath(p))
            for p in _images_in(path if path.is_absolute() else root / path, split, source)
        )
    if not images:
        raise DatasetYamlError(f"{source}: split {split!r} ({value}) contains no images")
    return tuple(sorted(images))


def _warn_unassigned(root: Path, splits: dict[str, tuple[Path, ...]], source: Path) -> None:
    """Log images under ``<root>/images`` that no split uses (left out of training and metrics)."""
    folder = root / "images"
    if not folder.is_dir():
        return
    used = {p for paths in splits.values() for p in paths}
    unused = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p not in used
    )
    if unused:
        logger.warning(
            "%s: %d image(s) under %s belong to no split (e.g. %s); they are not used",
            source, len(unused), folder, unused[0].relative_to(root),
        )  # fmt: skip


def parse_dataset_yaml(
    yaml_path: Path, root: Path | None = None, name: str | None = None
) -> DatasetSpec:
    """Parse and check a dataset YAML.

    Args:
        yaml_path: the YAML file.
        root: dataset root to use instead of the YAML's ``path`` (e.g. where the archive was
            extracted); ``None`` resolves ``path`` (absolute, or relative to the YAML's folder).
        name: dataset name; default the YAML's stem.

    Raises:
        DatasetYamlError: missing/bad ``names``, ``nc`` disagreeing, duplicate or non-string
            names, missing ``train``/``val``, split paths that do not exist, a split under which
            no images are found. Images under ``<root>/images`` that belong to no split are
            logged as a warning (they are simply not used).
    """
    yaml_path = Path(yaml_path)
    config = _load_yaml(yaml_path)
    names = _parse_names(config, yaml_path)
    root = _dataset_root(config, yaml_path, root)
    splits = _parse_splits(config, root, yaml_path)
    _warn_unassigned(root, splits, yaml_path)
    spec = DatasetSpec(
        name or yaml_path.stem, root, Path(os.path.abspath(yaml_path)), names, splits
    )
    logger.info(
        "Dataset %s: %d classes, %s",
        spec.name,
        spec.nc,
        ", ".join(f"{s} {len(p)} images" for s, p in splits.items()),
    )
    return spec


def _load_yaml(yaml_path: Path) -> dict[str, Any]:
    """The YAML's top-level mapping, read with the safe loader after the size check."""
    try:
        size = yaml_path.stat().st_size
    except OSError as error:
        raise DatasetYamlError(f"{yaml_path}: cannot read the dataset YAML: {error}") from error
    if size > MAX_YAML_BYTES:
        raise DatasetYamlError(
            f"{yaml_path}: {size} bytes is over the {MAX_YAML_BYTES}-byte limit for a dataset "
            "YAML; list images in a .txt file (train: train.txt) instead of inside the YAML"
        )
    try:
        config = yaml.load(yaml_path.read_text(encoding="utf-8"), Loader=_SafeLoader)
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise DatasetYamlError(f"{yaml_path}: cannot read the dataset YAML: {error}") from error
    if not isinstance(config, dict):
        raise DatasetYamlError(f"{yaml_path}: expected a mapping at the top level")
    if config.get("download"):
        logger.info(
            "%s: ignoring its 'download' entry (nothing from a dataset YAML is executed)", yaml_path
        )
    return config


def _dataset_root(config: dict[str, Any], yaml_path: Path, root: Path | None) -> Path:
    """``root`` when given, else the YAML's ``path`` (relative to its folder); must exist."""
    if root is None:
        declared = Path(str(config.get("path") or ".")).expanduser()
        root = declared if declared.is_absolute() else yaml_path.parent / declared
    elif config.get("path"):
        logger.info(
            "%s: using dataset root %s instead of its path %r", yaml_path, root, config["path"]
        )
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise DatasetYamlError(f"{yaml_path}: dataset root {root} does not exist")
    return root


def _parse_splits(
    config: dict[str, Any], root: Path, yaml_path: Path
) -> dict[str, tuple[Path, ...]]:
    """Each split's images; ``train`` and ``val`` are required, ``test`` optional."""
    splits: dict[str, tuple[Path, ...]] = {}
    for split in SPLITS:
        value = config.get(split)
        if value in (None, "", []):
            if split != "test":
                raise DatasetYamlError(
                    f"{yaml_path}: missing {split!r} (a folder, a .txt list or a list)"
                )
            continue
        splits[split] = _split_images(value, split, root, yaml_path)
    return splits
