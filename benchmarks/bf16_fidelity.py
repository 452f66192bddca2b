"""How faithful one bfloat16-autocast training step is to the fp32 step, layer by layer.

The question behind it (issue 14): a 60-epoch from-scratch run with ``training.bf16`` ended at
mAP50 0.0037 against 0.0147 in fp32. Is a part of the step (forward maps, loss and assignment,
BatchNorm statistics, gradients of some layers) wrong in bf16, or does every part agree to
bf16's rounding and something else makes the difference?

For each model (``scratch``: yolo11n at its seed-0 initialisation; ``trained``: Ultralytics'
yolo11n trained on 16 COCO128 images, imported; any checkpoints given with ``--checkpoints``)
and each COCO128 training batch (batch 16, mosaic, ``--imgsz``), the same batch goes through
these training steps from the same state:

- ``fp32``: the reference (NHWC, as training runs by default);
- ``fp32-nchw``: fp32 with the NCHW kernels: other summation orders, so it measures fp32's own
  float noise, the floor that "the same math" means;
- ``fp32+noise`` / ``fp32+fp16-noise``: fp32 with every convolution input multiplied by
  ``1 + U(-u, u)``, ``u`` = bf16's / fp16's unit roundoff (2^-8 / 2^-11): errors of the size of
  bf16's (fp16's) rounding without any low-precision kernel;
- ``bf16``: ``torch.autocast("cpu", torch.bfloat16)`` around the forward pass, exactly as the
  trainer does (the loss, the assigner and the optimizer stay in fp32);
- ``bf16+fp32-assign``: bf16 with fp32's target assignment replayed.

Reported against ``fp32``: the three loss parts, the number of assigned positives, the cosine and
the relative error of the whole gradient and of each part of the network, the worst parameter
tensors, BatchNorm's updated running statistics, and the relative error of the outputs of layers
0..22 and of the head maps (how an error grows with depth). Prints tables, writes JSON.

bf16 is emulated on CPUs without AVX-512-BF16/AMX (about 10x slower, same numerics): a batch at
320 takes 10-20 s there. Checkpoints early in a from-scratch run come from the anchor recipe,
e.g. ``anchor_coco16b.py --seeds 0 --epochs 3 --train-only --workdir /tmp/e3``. Usage::

    python benchmarks/bf16_fidelity.py                       # 320, 2 batches, scratch + trained
    python benchmarks/bf16_fidelity.py --batches 1 --checkpoints e3=/tmp/e3/seed0/last.pt
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import logging
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from coco128 import DEFAULT_ZIP, ROOT, build_coco128_cache
from machine import results_path
from torch import nn

from yolo_mlops.yolo.data.loader import build_train_loader
from yolo_mlops.yolo.io.weights import load_pretrained
from yolo_mlops.yolo.model.network import build_model
from yolo_mlops.yolo.train.engine import autocast_context, prepare_images
from yolo_mlops.yolo.train.loss import DetectionLoss
from yolo_mlops.yolo.train.precision import native_bf16

logger = logging.getLogger("benchmarks.bf16_fidelity")

DEFAULT_CHECKPOINT = ROOT.parent / "shared" / "reference" / "yolo11n_coco16_ultralytics.pt"
#: Unit roundoffs: round-to-nearest to 8 (bf16) or 11 (fp16) significant bits errs by at most
#: 2^-8 or 2^-11 relative.
BF16_ROUNDOFF = 2.0**-8
FP16_ROUNDOFF = 2.0**-11
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {"channels_last": True},
    "fp32-nchw": {"channels_last": False},
    # fp32 with every convolution input multiplied by (1 + U(-2^-8, 2^-8)): random errors of
    # bf16's size without any bf16 kernel, and fp32's assignment, to compare with bf16+fp32-assign
    "fp32+noise": {"channels_last": True, "noise": BF16_ROUNDOFF, "replay": True},
    # the same with fp16's roundoff (CUDA AMP's precision), 8x smaller
    "fp32+fp16-noise": {"channels_last": True, "noise": FP16_ROUNDOFF, "replay": True},
    "bf16": {"channels_last": True, "dtype": torch.bfloat16},
    # bf16 with fp32's target assignment replayed: what is left is bf16's rounding alone
    "bf16+fp32-assign": {"channels_last": True, "dtype": torch.bfloat16, "replay": True},
}
#: Parts of yolo11n by module index (design §1): backbone 0-10, neck 11-22, head 23.
PARTS = {
    "backbone": lambda name: int(name.split(".")[1]) <= 10,
    "neck": lambda name: 11 <= int(name.split(".")[1]) <= 22,
    "head box (cv2)": lambda name: ".23.cv2." in f".{name}",
    "head cls (cv3)": lambda name: ".23.cv3." in f".{name}",
}
#: Layers whose output error the depth table shows (``maps`` = the head's three maps).
DEPTH = (0, 2, 4, 6, 8, 9, 10, 13, 16, 19, 22, "maps")


def add_input_noise(model: nn.Module, size: float, seed: int = 0) -> None:
    """Multiply every convolution's input by ``1 + U(-size, size)`` (seeded, per element)."""
    generator = torch.Generator().manual_seed(seed)

    def perturb(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
        x = inputs[0]
        factor = 1 + size * (2 * torch.rand(x.shape, generator=generator) - 1)
        return (x * factor.to(memory_format=_memory_format(x)),)

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_pre_hook(perturb)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if nhwc else torch.contiguous_format


def record_outputs(model: nn.Module) -> dict[Any, torch.Tensor]:
    """Keep each top-level layer's output (``DEPTH`` layers; float64 copies) as it is computed."""
    outputs: dict[Any, torch.Tensor] = {}
    for index, layer in enumerate(model.model):
        if index in DEPTH:
            layer.register_forward_hook(
                lambda _m, _i, out, index=index: outputs.__setitem__(index, out.detach().double())
            )
    return outputs


def step_record(
    model: nn.Module, batch: dict, variant: str, assignments: list[Any] | None = None
) -> dict[str, Any]:
    """One training forward/backward of ``batch`` in ``variant``; gradients, losses, BN stats.

    ``assignments``: for variants that replay, the target assignments to reuse (fp32's) instead
    of assigning from this variant's predictions.
    """
    setting = VARIANTS[variant]
    model = copy.deepcopy(model)
    memory = torch.channels_last if setting["channels_last"] else torch.contiguous_format
    model = model.to(memory_format=memory).train()
    if setting.get("noise"):
        add_input_noise(model, setting["noise"])
    outputs = record_outputs(model)
    criterion = DetectionLoss(80)
    made = record_assignments(criterion, assignments if setting.get("replay") else None)
    images = prepare_images(batch["images"], torch.device("cpu"), setting["channels_last"])
    start = time.perf_counter()
    with autocast_context(torch.device("cpu"), setting.get("dtype")):
        maps = model(images)
    total, parts = criterion([m.float() for m in maps], batch["targets"], images.shape[0])
    total.backward()
    seconds = time.perf_counter() - start
    outputs["maps"] = torch.cat([m.detach().double().flatten() for m in maps])
    grads = {
        name: p.grad.detach().flatten().double()
        for name, p in model.named_parameters()
        if p.grad is not None
    }
    stats = {
        name: b.detach().flatten().double()
        for name, b in model.named_buffers()
        if name.endswith(("running_mean", "running_var"))
    }
    return {
        "parts": parts.tolist(),
        "positives": int(made[-1].fg_mask.sum()),
        "assignments": made,
        "outputs": outputs,
        "grads": grads,
        "stats": stats,
        "seconds": seconds,
    }


def record_assignments(criterion: DetectionLoss, replay: list[Any] | None = None) -> list[Any]:
    """Record each assignment ``criterion`` makes (appended), or replay those in ``replay``."""
    made: list[Any] = []
    assign = criterion.assigner.assign

    def counted(*args: Any, **kwargs: Any) -> Any:
        assigned = replay[len(made)] if replay else assign(*args, **kwargs)
        made.append(assigned)
        return assigned

    criterion.assigner.assign = counted  # type: ignore[method-assign]
    return made


def _cos_rel(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Cosine similarity and ``|a - b| / |a|`` of two flat vectors (``a`` the reference).

    Two zero vectors (a layer no positive reached) agree: cosine 1, error 0.
    """
    norm_a, norm_b = float(a.norm()), float(b.norm())
    if norm_a == 0.0 and norm_b == 0.0:
        return 1.0, 0.0
    cos = float(a @ b) / (norm_a * norm_b) if norm_a and norm_b else 0.0
    rel = float((a - b).norm()) / max(norm_a, 1e-30)
    return cos, rel


def compare(ref: dict[str, Any], other: dict[str, Any], worst: int = 5) -> dict[str, Any]:
    """``other`` against ``ref``: losses, whole-gradient and per-part fidelity, worst tensors."""
    names = list(ref["grads"])
    whole = _cos_rel(
        torch.cat([ref["grads"][n] for n in names]), torch.cat([other["grads"][n] for n in names])
    )
    parts = {}
    for part, member in PARTS.items():
        chosen = [n for n in names if member(n)]
        parts[part] = _cos_rel(
            torch.cat([ref["grads"][n] for n in chosen]),
            torch.cat([other["grads"][n] for n in chosen]),
        )
    per_tensor = sorted(
        ((n, *_cos_rel(ref["grads"][n], other["grads"][n])) for n in names),
        key=lambda row: row[1],
    )
    stats = [_cos_rel(ref["stats"][n], other["stats"][n])[1] for n in ref["stats"]]
    return {
        "loss_rel": [
            abs(o - r) / abs(r) for r, o in zip(ref["parts"], other["parts"], strict=True)
        ],
        "grad_cos": whole[0],
        "grad_rel": whole[1],
        "parts": {k: {"cos": v[0], "rel": v[1]} for k, v in parts.items()},
        "worst_tensors": [{"name": n, "cos": c, "rel": r} for n, c, r in per_tensor[:worst]],
        "bn_stats_rel_max": max(stats),
        "bn_stats_rel_median": float(torch.tensor(stats).median()),
        "forward_rel": {
            str(k): _cos_rel(ref["outputs"][k].flatten(), other["outputs"][k].flatten())[1]
            for k in DEPTH
        },
    }


def load_models(checkpoints: list[str]) -> dict[str, nn.Module]:
    """``scratch`` (seed 0) and one yolo11n (80 classes) per existing checkpoint.

    ``checkpoints`` are ``NAME=PATH`` or ``PATH`` (named after the file's stem); Ultralytics'
    trained yolo11n, the default, is named ``trained``.
    """
    torch.manual_seed(0)
    models = {"scratch": build_model("n", num_classes=80)}
    for entry in checkpoints:
        name, _, path = entry.rpartition("=")
        checkpoint = Path(path)
        if not checkpoint.is_file():
            logger.warning("%s not found: skipped", checkpoint)
            continue
        name = name or ("trained" if checkpoint == DEFAULT_CHECKPOINT else checkpoint.stem)
        models[name] = build_model("n", num_classes=80)
        load_pretrained(models[name], checkpoint, "n")
    for model in models.values():
        for name, param in model.named_parameters():
            if ".dfl" in name:
                param.requires_grad_(False)
    return models


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="COCO128 archive")
    parser.add_argument(
        "--checkpoints", nargs="*", default=[str(DEFAULT_CHECKPOINT)],
        help="[NAME=]PATH of models to compare besides the seed-0 initialisation (ours or "
        "Ultralytics' checkpoints)",
    )  # fmt: skip
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batches", type=int, default=2, help="training batches of 16 per model")
    parser.add_argument(
        "--variants", nargs="+", choices=[v for v in VARIANTS if v != "fp32"],
        default=[v for v in VARIANTS if v != "fp32"],
        help="what to compare with fp32 (the noise variants need no bf16 kernel and run fast)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=results_path("bf16_fidelity"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cache = build_coco128_cache(args.zip, Path(tmp), args.imgsz)
        loader = build_train_loader(cache, batch_size=16, workers=0, epochs=100)
        loader.set_epoch(0)
        batches = list(itertools.islice(iter(loader), args.batches))
    rows = []
    for (model_name, model), (index, batch) in itertools.product(
        load_models(args.checkpoints).items(), enumerate(batches)
    ):
        records = {"fp32": step_record(model, batch, "fp32")}
        for variant in args.variants:
            records[variant] = step_record(model, batch, variant, records["fp32"]["assignments"])
        for variant in args.variants:
            row = {"model": model_name, "batch": index, "variant": variant}
            row |= compare(records["fp32"], records[variant])
            row |= {"seconds": records[variant]["seconds"]}
            row["fp32_seconds"] = records["fp32"]["seconds"]
            row["fp32_parts"] = records["fp32"]["parts"]
            row["positives"] = [records["fp32"]["positives"], records[variant]["positives"]]
            row["parts_value"] = records[variant]["parts"]
            rows.append(row)
            logger.info(
                "%s batch %d %s: grad cos %.5f rel %.4f, losses %s vs %s",
                model_name, index, variant, row["grad_cos"], row["grad_rel"],
                [round(x, 4) for x in row["parts_value"]], [round(x, 4) for x in row["fp32_parts"]],
            )  # fmt: skip

    print_tables(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "bf16_fidelity",
                "imgsz": args.imgsz,
                "rows": rows,
                "machine": {
                    "cpus": torch.get_num_threads(),
                    "bf16_native": native_bf16(),
                    "platform": platform.platform(),
                    "torch": torch.__version__,
                },
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


def print_tables(rows: list[dict[str, Any]]) -> None:
    """Whole-step table, per-part table, forward error by depth, worst tensors of bf16 rows."""
    lead = f"\n{'model':>8} {'batch':>5} {'variant':>16}"
    print(
        f"{lead} {'box/cls/dfl rel err':>24} {'positives':>11} {'grad cos':>9} "
        f"{'grad rel':>9} {'BN stats rel (med/max)':>23} {'s':>6}"
    )
    for r in rows:
        losses = "/".join(f"{x:.1e}" for x in r["loss_rel"])
        stats = f"{r['bn_stats_rel_median']:.1e}/{r['bn_stats_rel_max']:.1e}"
        positives = "{}/{}".format(*r["positives"])
        print(
            f"{_lead(r)} {losses:>24} {positives:>11} {r['grad_cos']:>9.5f} "
            f"{r['grad_rel']:>9.4f} {stats:>23} {r['seconds']:>6.1f}"
        )
    print(lead + " " + " ".join(f"{p:>16}" for p in PARTS))
    for r in rows:
        cells = " ".join(f"{r['parts'][p]['cos']:>8.5f}/{r['parts'][p]['rel']:.3f}" for p in PARTS)
        print(f"{_lead(r)} {cells}")
    print("(part cells: gradient cosine / relative error against fp32)")
    print("\nforward error by depth, |out - fp32 out| / |fp32 out| of layer:")
    print(lead.lstrip("\n") + " " + " ".join(f"{k!s:>7}" for k in DEPTH))
    for r in rows:
        print(_lead(r) + " " + " ".join(f"{r['forward_rel'][str(k)]:>7.1e}" for k in DEPTH))
    print()
    for r in rows:
        if r["variant"].startswith("bf16"):
            worst = ", ".join(f"{w['name']} {w['cos']:.3f}" for w in r["worst_tensors"])
            print(f"worst {r['variant']} tensors, {r['model']} batch {r['batch']}: {worst}")


def _lead(row: dict[str, Any]) -> str:
    return f"{row['model']:>8} {row['batch']:>5} {row['variant']:>16}"


if __name__ == "__main__":
    main()
