"""Kedro pipeline -> stage groups (one KFP task each), and the pre-flight check.

A node's stage is its stage tag (``ingest``, ``validate``, ``preprocess``, ``train``,
``evaluate``, ``export``, ``register``); a node without one falls back to its top-level
namespace. Group dependencies follow Kedro's dataset dependencies: group B depends on group A
when a node of B reads a dataset that a node of A writes. Every such crossing dataset must be
persisted (the tasks run in separate pods), which :func:`preflight_check` enforces against the
catalog.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kedro.io import DataCatalog, MemoryDataset
from kedro.io.shared_memory_dataset import SharedMemoryDataset
from kedro.pipeline import Pipeline

logger = logging.getLogger(__name__)

STAGE_TAGS: tuple[str, ...] = (
    "ingest", "validate", "preprocess", "train", "evaluate", "export", "register"
)  # fmt: skip


class GroupingError(ValueError):
    """The pipeline cannot be split into stage groups (no stage, two stages, a cycle)."""


class PreflightError(ValueError):
    """A dataset crossing a task boundary would not survive between pods."""


@dataclass
class StageGroup:
    """The nodes that run as one KFP task.

    Attributes:
        name: stage name (tag or namespace), e.g. ``"train"``.
        nodes: Kedro node names in topological order (``kedro run --nodes``).
        inputs: datasets read by the group and written by another group (crossing in).
        outputs: datasets written by the group and read by another group (crossing out).
        dependencies: names of the groups this group reads from, in pipeline order.
        parameter_blocks: top-level parameter blocks the nodes read (``params:training`` ->
            ``training``); ``"*"`` when a node reads the whole ``parameters`` dict.
    """

    name: str
    nodes: list[str] = field(default_factory=list)
    inputs: set[str] = field(default_factory=set)
    outputs: set[str] = field(default_factory=set)
    dependencies: list[str] = field(default_factory=list)
    parameter_blocks: set[str] = field(default_factory=set)

    @property
    def task_name(self) -> str:
        """The KFP task/component name: lowercase, ``[a-z0-9-]`` (as kfp sanitises it)."""
        return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", self.name.lower())).strip("-")


def _parameter_block(dataset: str) -> str | None:
    if dataset == "parameters":
        return "*"
    if dataset.startswith("params:"):
        return dataset[len("params:") :].split(".", 1)[0]
    return None


def node_stage(node, stage_tags: Sequence[str] = STAGE_TAGS, group_by: str = "tag") -> str:
    """The stage a node belongs to.

    Args:
        node: a Kedro ``Node``.
        stage_tags: the tags that name stages.
        group_by: ``"tag"`` (stage tag, falling back to the top-level namespace) or
            ``"namespace"`` (top-level namespace only).

    Raises:
        GroupingError: the node has two stage tags, or neither a stage tag nor a namespace.
    """
    if group_by == "tag":
        tags = sorted(set(node.tags) & set(stage_tags))
        if len(tags) > 1:
            raise GroupingError(f"node {node.name!r} has several stage tags {tags}: keep one")
        if tags:
            return tags[0]
    elif group_by != "namespace":
        raise GroupingError(f"group_by must be 'tag' or 'namespace', got {group_by!r}")
    if node.namespace:
        return node.namespace.split(".", 1)[0]
    raise GroupingError(
        f"node {node.name!r} has no stage tag (one of {list(stage_tags)}) and no namespace: "
        "add tags=['<stage>'] to it in its pipeline.py"
    )


def _topological_groups(groups: dict[str, StageGroup], stage_tags: Sequence[str]) -> list[str]:
    """Kahn's algorithm; ties broken by the stage order, then by name."""
    rank = {tag: i for i, tag in enumerate(stage_tags)}
    pending = {name: set(g.dependencies) for name, g in groups.items()}
    order: list[str] = []
    while pending:
        ready = [name for name, deps in pending.items() if not deps]
        if not ready:
            raise GroupingError(
                f"stage groups depend on each other in a cycle: {sorted(pending)}; a stage must "
                "not read a dataset written by a later stage that itself reads from it"
            )
        ready.sort(key=lambda name: (rank.get(name, len(rank)), name))
        chosen = ready[0]
        order.append(chosen)
        del pending[chosen]
        for deps in pending.values():
            deps.discard(chosen)
    return order


def group_stages(
    pipeline: Pipeline, stage_tags: Sequence[str] = STAGE_TAGS, group_by: str = "tag"
) -> list[StageGroup]:
    """Split a Kedro pipeline into stage groups, in an order that respects their dependencies.

    Raises:
        GroupingError: see :func:`node_stage`, or the groups' dependencies form a cycle.
    """
    groups: dict[str, StageGroup] = {}
    producer: dict[str, str] = {}
    for node in pipeline.nodes:  # topologically sorted by Kedro
        stage = node_stage(node, stage_tags, group_by)
        group = groups.setdefault(stage, StageGroup(name=stage))
        group.nodes.append(node.name)
        for output in node.outputs:
            producer[output] = stage
    for node in pipeline.nodes:
        group = groups[node_stage(node, stage_tags, group_by)]
        for dataset in node.inputs:
            block = _parameter_block(dataset)
            if block:
                group.parameter_blocks.add(block)
            source = producer.get(dataset)
            if source is None or source == group.name:
                continue
            group.inputs.add(dataset)
            groups[source].outputs.add(dataset)
            if source not in group.dependencies:
                group.dependencies.append(source)
    order = _topological_groups(groups, stage_tags)
    position = {name: i for i, name in enumerate(order)}
    for group in groups.values():
        group.dependencies.sort(key=position.__getitem__)
    names = [groups[name].task_name for name in order]
    if len(set(names)) != len(names):
        raise GroupingError(f"two stages map to the same KFP task name: {names}")
    logger.info("Stage groups: %s", {name: groups[name].nodes for name in order})
    return [groups[name] for name in order]


def crossing_datasets(groups: Iterable[StageGroup]) -> dict[str, tuple[str, list[str]]]:
    """``{dataset: (producer stage, [consumer stages])}`` for every dataset crossing tasks."""
    crossing: dict[str, tuple[str, list[str]]] = {}
    groups = list(groups)
    for group in groups:
        for dataset in sorted(group.outputs):
            consumers = [g.name for g in groups if dataset in g.inputs]
            crossing[dataset] = (group.name, consumers)
    return crossing


def preflight_check(groups: Iterable[StageGroup], catalog: DataCatalog) -> None:
    """Fail when a dataset that crosses a task boundary would not be persisted.

    A crossing dataset must be a catalog entry (explicit or matched by a dataset factory
    pattern) that is not a ``MemoryDataset``/``SharedMemoryDataset``: anything else lives in
    one pod's memory and is gone when the next task starts.

    Raises:
        PreflightError: naming every offending dataset, its producer and consumers.
    """
    problems = []
    for dataset, (producer, consumers) in crossing_datasets(groups).items():
        instance = catalog.get(dataset)
        where = f"{dataset!r} (written by stage {producer!r}, read by {consumers})"
        if instance is None:
            problems.append(f"{where} is not in the catalog, so it would default to memory")
        elif isinstance(instance, MemoryDataset | SharedMemoryDataset):
            problems.append(f"{where} is a {type(instance).__name__}")
    if problems:
        raise PreflightError(
            "datasets crossing Kubeflow task boundaries must be persisted (declare them in "
            "conf/base/catalog_*.yml with a file-backed type): " + "; ".join(problems)
        )
