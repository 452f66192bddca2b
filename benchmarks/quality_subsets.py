"""Training quality on four disjoint 16-image COCO128 subsets, seeds beside the reference's seeds.

The coco16b recipe (``anchor_coco16b.recipe``: yolo11n from scratch, 300 epochs, imgsz 320, batch
8, nbs 8, SGD lr0 0.01, default augmentation, 0 loader workers, CPU, no validation during
training) on images 17-32 (coco16b), 33-48, 49-64 and 65-80 of COCO128: numbering is 1-based over
``images/train2017/*.jpg`` sorted by file name, and images 17-32 are exactly the anchor's
``images.txt`` (checked). Images 33-48 include one without labels (a background image). Each
subset is both the training and the evaluation set, as in the anchor.

Per subset and seed (0, 1, 2 by default) it trains ours in float32 (``fp32``) and in the default
precision (``auto``: ``training.bf16: auto``, bf16 after 60 float32 steps on a CPU with native
bf16, float32 elsewhere, when ``auto`` is the same run as ``fp32`` and is left out), and the
reference: Ultralytics 8.4.190 run as a separate program from its own virtual environment
(``--reference-yolo``; :mod:`reference_runs`; never a project dependency). coco16b's reference
seeds 0-2 are already in ``../shared/reference/coco16b`` (``results.csv``, ``val.json``) and are
reused at 300 epochs. Every final EMA checkpoint is scored with our evaluation at 320 (it gives
Ultralytics' ``val`` figures to 5 decimals; checked once on the anchor's ``last.pt`` against its
``val.json``).

Per subset it prints the per-seed mAP50-95, both means and spreads (max - min) and the issue's
acceptance check (ours mean >= reference mean - 0.01, ours spread <= reference spread + 0.03),
writes ``results/quality_subsets_<machine kind>.json`` and one loss-curve overlay per subset
(``..._<subset>_losses.png``: ours per seed over the reference's per seed).

Runs are kept in ``--workdir``: a finished run is never trained again, an interrupted one of ours
continues exactly. ``--subsets``, ``--seeds``, ``--precisions`` and ``--side`` select what runs, so
several processes (``--threads 1`` each, disjoint selections) can share the work; ``--report-only``
then scores and reports everything finished without training. ``--set KEY=VALUE`` trains a variant
of ours (e.g. ``tal_min_side=16``) in folders of its own, against the same reference runs.

Usage::

    python benchmarks/quality_subsets.py --reference-yolo /work/reference-venv/bin/yolo
    python benchmarks/quality_subsets.py --subsets 33 --seeds 0 --side ours --epochs 2  # smoke
    python benchmarks/quality_subsets.py --set tal_min_side=16 --out /tmp/tal16.json  # a variant
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from anchor_coco16b import ANCHOR, recipe
from coco128 import (
    DEFAULT_ZIP,
    ROOT,
    build_cache_from_dataset_yaml,
    build_image_subset,
    subset_names,
)
from machine import results_path
from reference_runs import finished, reference_settings, train_reference
from seed_runs import (
    METRICS,
    PRECISIONS,
    machine_record,
    mean_spread,
    plot_overlay,
    precision_label,
    read_reference_losses,
    score_run,
    seed_summary,
    train_run,
)

from yolo_mlops.yolo.train.state import LOSS_KEYS

logger = logging.getLogger("benchmarks.quality_subsets")

SIZE = 16
IMGSZ = 320
ANCHOR_FIRST = 17  # images 17-32 are coco16b
DEFAULT_YOLO = Path("/work/reference-venv/bin/yolo")


@dataclass(frozen=True)
class Benchmark:
    """What a quality benchmark trains: its recipe, subsets and epochs.

    Attributes:
        name: the JSON's stem (``results/<name>_<kind>.json``) and the work folder's name.
        recipe: ``(seed, epochs, threads, save_dir) -> training block`` of our trainer; its
            ``pretrained`` (or ``yolo11n.yaml`` when empty) is what the reference starts from.
        subsets: default first images (1-based, sorted order) of the 16-image subsets.
        epochs: default epochs.
        stored_reference: coco16b's stored reference seeds are this recipe's (at ``epochs``).
        check_spread: the acceptance has the spread clause (from scratch) or only the mean's.
    """

    name: str
    recipe: Callable[[int, int, int, Path], dict]
    subsets: tuple[int, ...]
    epochs: int
    stored_reference: bool = False
    check_spread: bool = True

    def reference_model(self) -> str:
        """The reference's ``model=``: the checkpoint to fine-tune or ``yolo11n.yaml``."""
        return self.recipe(0, 1, 0, Path("run")).get("pretrained") or "yolo11n.yaml"


#: The coco16b recipe from scratch on images 17-32, 33-48, 49-64 and 65-80.
SCRATCH = Benchmark("quality_subsets", recipe, (17, 33, 49, 65), 300, stored_reference=True)


def subset_key(first: int) -> str:
    """``images17-32``: the subset's folder and JSON key."""
    return f"images{first}-{first + SIZE - 1}"


def prepare_subset(archive: Path, workdir: Path, first: int) -> tuple[Path, list[str]]:
    """The subset's dataset YAML and file names; images 17-32 must be ``images.txt``."""
    names = subset_names(archive, first, SIZE)
    if first == ANCHOR_FIRST and (ANCHOR / "images.txt").is_file():
        anchor = [Path(n).name for n in (ANCHOR / "images.txt").read_text().split()]
        if names != anchor:
            raise SystemExit(f"images 17-32 of {archive} are not {ANCHOR / 'images.txt'}")
    return build_image_subset(archive, workdir, names, subset_key(first)), names


def stored_reference(seed: int) -> tuple[Path, dict] | None:
    """coco16b's stored reference run of ``seed``: its ``results.csv`` and ``val.json`` at 320."""
    folder = ANCHOR if seed == 0 else ANCHOR / "seeds" / f"seed{seed}"
    if not (folder / "results.csv").is_file() or not (folder / "val.json").is_file():
        return None
    val = json.loads((folder / "val.json").read_text())["val"][str(IMGSZ)]
    return folder / "results.csv", {key: float(val[key]) for key in METRICS}


def check_reference_eval(dataset_yaml: Path, run_root: Path) -> dict:
    """Our evaluation of the anchor's ``last.pt`` against Ultralytics' own ``val.json`` (320)."""
    ours = score_run(ANCHOR / "last.pt", dataset_yaml, IMGSZ, run_root / "anchor_last_val320.json")
    stored = json.loads((ANCHOR / "val.json").read_text())["val"][str(IMGSZ)]
    diff = {key: ours[key] - float(stored[key]) for key in METRICS}
    logger.info("our evaluation of the anchor's last.pt minus its val.json: %s", diff)
    return {"ours": ours, "val_json": stored, "difference": diff}


def run_ours(cache, dataset_yaml: Path, run_root: Path, args, precision: str) -> dict:
    """Train (or reuse) and score our seeds in ``precision``; ``{seed: record}``."""
    records = {}
    for seed in args.seeds:
        variant = "".join(f"-{key}={value}" for key, value in sorted(args.overrides.items()))
        run_dir = run_root / f"ours-{precision}-e{args.epochs}{variant}" / f"seed{seed}"
        config = args.bench.recipe(seed, args.epochs, args.threads, run_dir) | PRECISIONS[precision]
        config |= args.overrides
        if args.report_only or cache is None:
            if not (run_dir / "history.json").is_file():
                continue
            history = json.loads((run_dir / "history.json").read_text())
            if len(history) != args.epochs:
                continue
        else:
            history = train_run(cache, config, run_dir)
        score = score_run(run_dir / "last.pt", dataset_yaml, IMGSZ, run_dir / "val320.json")
        records[seed] = score | {"history": history, "train_wall_s": history[-1].get("wall_s")}
    return records


def run_reference(first: int, dataset_yaml: Path, run_root: Path, args) -> dict:
    """The reference's seeds: stored (coco16b, 300 epochs), trained, or skipped; ``{seed: rec}``."""
    records = {}
    for seed in args.seeds:
        stored = stored_reference(seed) if first == ANCHOR_FIRST else None
        if stored is not None and args.bench.stored_reference and args.epochs == args.bench.epochs:
            losses = read_reference_losses(stored[0])
            records[seed] = stored[1] | {"losses": losses, "source": "stored val.json"}
            continue
        run_dir = run_root / f"reference-e{args.epochs}" / f"seed{seed}"
        config = args.bench.recipe(seed, args.epochs, 0, run_dir)
        settings = reference_settings(config, args.bench.reference_model(), IMGSZ)
        if args.report_only or args.reference_yolo is None:
            if not finished(run_dir, args.epochs):
                continue
        else:
            train_reference(args.reference_yolo, dataset_yaml, run_dir, settings,
                            threads=args.threads)  # fmt: skip
        score = score_run(run_dir / "weights" / "last.pt", dataset_yaml, IMGSZ,
                          run_dir / "val320.json")  # fmt: skip
        losses = read_reference_losses(run_dir / "results.csv")
        records[seed] = score | {"losses": losses, "source": "our evaluation of last.pt"}
    for record in records.values():  # the reference's results.csv: cumulative seconds
        record["train_wall_s"] = float(record["losses"]["time"].iloc[-1])
    return records


def final_losses(history: list[dict]) -> dict[str, float]:
    """The last epoch's three losses of a history."""
    return {key: float(history[-1][key]) for key in LOSS_KEYS}


def subset_report(first: int, ours: dict, reference: dict, args: argparse.Namespace) -> dict:
    """The JSON entry of one subset: per-seed scores and final losses, summaries per precision."""
    ref_scores = {seed: rec["mAP50-95"] for seed, rec in reference.items()}
    report: dict = {"images": f"{first}-{first + SIZE - 1}", "reference": {}, "ours": {}}
    for seed, rec in reference.items():
        report["reference"][str(seed)] = {k: rec[k] for k in METRICS} | {
            "source": rec["source"],
            "final_losses": {k: float(rec["losses"][k].iloc[-1]) for k in LOSS_KEYS},
            "train_wall_s": rec["train_wall_s"],
        }
    mean, spread = mean_spread(ref_scores)
    report["reference_summary"] = {"mean": mean, "spread": spread}
    report["summary"] = {}
    for precision, records in ours.items():
        report["ours"][precision] = {"precision": args.labels[precision], "seeds": {
            str(seed): {k: rec[k] for k in METRICS}
            | {"final_losses": final_losses(rec["history"]), "train_wall_s": rec["train_wall_s"]}
            for seed, rec in records.items()
        }}  # fmt: skip
        scores = {seed: rec["mAP50-95"] for seed, rec in records.items()}
        report["summary"][precision] = seed_summary(
            scores, ref_scores, check_spread=args.bench.check_spread
        )
    return report


def _cell(value: float | None) -> str:
    return f"{value:8.4f}" if value is not None else f"{'-':>8}"


def _check(summary: dict) -> str:
    """``PASS``, ``FAIL (mean low, spread ok)``... or ``n/a`` with fewer than 2 seeds a side."""
    if summary["passes"] is None:
        return "n/a (< 2 seeds a side)"
    if summary["passes"]:
        return "PASS"
    mean = "ok" if summary["mean_ok"] else "low"
    return f"FAIL (mean {mean}, spread {'ok' if summary['spread_ok'] else 'wide'})"


def log_table(key: str, report: dict, seeds: list[int]) -> None:
    """Per-seed mAP50-95, means, spreads and the acceptance check of one subset."""
    head = " ".join(f"{'seed ' + str(s):>8}" for s in seeds)
    lines = [f"{key} (mAP50-95 at {IMGSZ})", f"{'':<30} {head} {'mean':>8} {'spread':>8}  check"]
    entries = [("reference 8.4.190", report["reference"], report["reference_summary"]["mean"],
                report["reference_summary"]["spread"], "")]  # fmt: skip
    for precision, entry in report["ours"].items():
        summary = report["summary"][precision]
        entries.append((f"ours {entry['precision']}", entry["seeds"], summary["mean_ours"],
                        summary["spread_ours"], _check(summary)))  # fmt: skip
    for name, per_seed, mean, spread, check in entries:
        cells = " ".join(_cell(per_seed.get(str(s), {}).get("mAP50-95")) for s in seeds)
        lines.append(f"{name:<30} {cells} {_cell(mean)} {_cell(spread)}  {check}")
    logger.info("\n".join(lines))


def parse_args(argv: list[str] | None, bench: Benchmark, description: str) -> argparse.Namespace:
    """The command line of ``bench`` (defaults from it)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="COCO128 archive")
    parser.add_argument(
        "--subsets",
        type=int,
        nargs="+",
        default=list(bench.subsets),
        help="first image of each 16-image subset (1-based, sorted order)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--precisions", nargs="+", choices=sorted(PRECISIONS), default=["fp32", "auto"]
    )
    parser.add_argument("--side", choices=("ours", "reference", "both"), default="both")
    parser.add_argument("--epochs", type=int, default=bench.epochs)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (0 = all)")
    parser.add_argument(
        "--reference-yolo",
        type=Path,
        default=None,
        help=f"the reference's yolo command, e.g. {DEFAULT_YOLO}; without it only "
        "finished or stored reference runs are reported",
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "benchmarks/work" / bench.name)
    parser.add_argument("--report-only", action="store_true", help="train nothing; report")
    parser.add_argument("--out", type=Path, default=results_path(bench.name))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a training setting of ours (YAML value), e.g. --set "
                        "tal_min_side=16: its runs get their own folders beside the default ones "
                        "(the reference's are shared); give the variant its own --out")  # fmt: skip
    args = parser.parse_args(argv)
    args.bench = bench
    args.overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        args.overrides[key.strip()] = yaml.safe_load(value)
    args.workdir = args.workdir.resolve()  # the dataset YAMLs name absolute paths
    return args


def precisions_here(args) -> dict[str, str]:
    """The selected precisions with what they compute in on this CPU; ``auto`` is left out
    where it resolves to float32 (the same runs as ``fp32``)."""
    base = args.bench.recipe(0, 1, 0, Path("run")) | args.overrides
    labels = {p: precision_label(base | PRECISIONS[p])
              for p in args.precisions}  # fmt: skip
    if "auto" in labels and "fp32" in labels and labels["auto"] == "fp32":
        logger.info("training.bf16: auto resolves to fp32 on this CPU: the auto runs are fp32's")
        del labels["auto"]
    return labels


def run_subset(first: int, args: argparse.Namespace) -> dict:
    """Train (or reuse), score, plot and report one subset; its JSON entry."""
    key = subset_key(first)
    dataset_yaml, names = prepare_subset(args.zip, args.workdir, first)
    run_root = args.workdir / "runs" / key
    ours: dict = {}
    if args.side in ("ours", "both"):
        cache = None
        if not args.report_only:
            cache = build_cache_from_dataset_yaml(dataset_yaml, run_root / "cache", IMGSZ)
        ours = {p: run_ours(cache, dataset_yaml, run_root, args, p) for p in args.labels}
    reference = {}
    if args.side in ("reference", "both"):
        reference = run_reference(first, dataset_yaml, run_root, args)
    entry = subset_report(first, ours, reference, args)
    plot = args.out.with_name(f"{args.out.stem}_{key}_losses.png")
    histories = {
        args.labels[p]: {s: r["history"] for s, r in recs.items()} for p, recs in ours.items()
    }
    title = f"{args.bench.name}, COCO128 {key}: training losses, ours vs Ultralytics 8.4.190"
    plot_overlay(histories, {s: r["losses"] for s, r in reference.items()}, plot, title)
    entry["loss_plot"] = str(plot.relative_to(ROOT)) if plot.is_relative_to(ROOT) else str(plot)
    entry["files"] = names
    if first == ANCHOR_FIRST and (ANCHOR / "last.pt").is_file():
        entry["reference_eval_check"] = check_reference_eval(dataset_yaml, run_root)
    log_table(key, entry, args.seeds)
    return entry


def main(argv: list[str] | None = None, bench: Benchmark = SCRATCH, doc: str = __doc__) -> dict:
    """Run ``bench``; returns (and writes) the JSON result. ``doc``: the script's docstring."""
    args = parse_args(argv, bench, doc.splitlines()[0])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.zip.is_file():
        raise SystemExit(f"COCO128 archive not found at {args.zip}; pass --zip")
    args.labels = precisions_here(args)
    recipe_record = bench.recipe(0, args.epochs, args.threads, Path("<workdir>")) | args.overrides
    report: dict = {"benchmark": bench.name, "epochs": args.epochs, "imgsz": IMGSZ,
                    "recipe": recipe_record, "subsets": {}}  # fmt: skip
    for first in args.subsets:
        report["subsets"][subset_key(first)] = run_subset(first, args)
    report["reference_model"] = Path(bench.reference_model()).name
    report["machine"] = machine_record()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    logger.info("wrote %s", args.out)
    return report


if __name__ == "__main__":
    main()
