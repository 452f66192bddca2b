"""A trial process of a search: ``python -m yolo_mlops.pipelines.tune.worker --spec S --index I``.

Started ``tune.workers`` times by the ``run_trials`` node (:func:`~.search.run_workers`); it opens
the study named in the spec file and runs trials until the study has ``tune.n_trials`` finished
(:func:`~.loop.run_trials`). Worker ``I`` of a GPU list ``training.device`` trains on GPU ``I``
mod the list's length.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from yolo_mlops.pipelines.tune import loop, search
from yolo_mlops.pipelines.tune import study as tune_study


def main(argv: Sequence[str] | None = None) -> int:
    """Run trials; 0 when the study is done, 1 when this process gave up (see its log)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", required=True, type=Path, help="search_spec.json")
    parser.add_argument("--index", type=int, default=0, help="this worker's index (GPU choice)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [tune worker {args.index}] "
                        "%(name)s: %(message)s")  # fmt: skip
    spec = search.SearchSpec.read(args.spec)
    settings = spec.settings
    rdb = tune_study.storage(spec.storage, settings, on_stale=loop.end_stale_run)
    name = f"{os.uname().nodename}:{os.getpid()}:{args.index}"
    try:
        ran = loop.run_trials(rdb, spec.context(search.open_cache(spec), args.index), name)
    except loop.SearchFailedError as error:
        logging.getLogger(__name__).error("%s", error)
        return 1
    logging.getLogger(__name__).info("worker %s done: %s", name, ran)
    return 0


if __name__ == "__main__":
    sys.exit(main())
