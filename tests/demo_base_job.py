"""The demo's English base for the slow proofs, built in a process of its own.

``python tests/demo_base_job.py ROOT TOKENIZER FLAG``: ``make demo``'s stages 1-3 exactly (general
sentences → ``vrt-prep`` shards → ``vrt-train`` from random init with
``recipes/train/demo_base.yaml``), then ``vrt-eval`` of the base on its held-out sentences at the
demo's delays. Writes ``ROOT/result.json`` last (atomically), so its presence means success.

The session fixture in ``conftest.py`` starts it before the first test. It trains on one
intra-op thread while the rest of the suite runs on the other core, and on two once the suite
waits for it (the file ``FLAG`` appears). Everything here is the toolkit's own code and recipe;
only the scheduling is the test suite's.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback


class MoreThreadsWhenWaited(Callback):
    """Two intra-op threads from the first step after ``flag`` exists (checked every 10 steps).

    Called from the training loop because ``torch.set_num_threads`` sets the calling thread's
    OpenMP team size: a watcher thread could not change the loop's.
    """

    def __init__(self, flag: str, threads: int = 2) -> None:
        self.flag, self.threads, self.switched_at = Path(flag), threads, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if self.switched_at is None and step % 10 == 0 and self.flag.exists():
            torch.set_num_threads(self.threads)
            self.switched_at = step
            print(f"demo base job: {self.threads} threads from step {step}", flush=True)


def main(root: Path, tokenizer: Path, flag: Path) -> None:
    from vrt_recipes import demo

    t0 = time.perf_counter()
    n = demo.DEFAULT_N_GENERAL
    summary = demo.prepare_general(root / "shards", "proof", tokenizer, n, None)
    if summary["kept_samples"] != n:
        raise SystemExit(f"expected {n} general samples, got {summary}")
    prep_s = time.perf_counter() - t0
    callback = {
        "class_path": f"{Path(__file__).stem}.{MoreThreadsWhenWaited.__name__}",
        "init_args": {"flag": str(flag), "threads": min(2, os.cpu_count() or 1)},
    }
    model = demo.train_base(
        root, tokenizer, demo.DEFAULT_BASE_STEPS, ["--trainer.callbacks+", json.dumps(callback)]
    )
    train_s = time.perf_counter() - t0 - prep_s
    results = demo.evaluate(
        {"base": str(model)}, root / "shards", list(demo.DELAYS_MS), root / "eval_english"
    )
    result = {
        "model": str(model),
        "n_samples": n,
        "prep_s": prep_s,
        "train_s": train_s,
        "eval_s": time.perf_counter() - t0 - prep_s - train_s,
        "english": results["base"]["domain"],
    }
    tmp = root / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, root / "result.json")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(*map(Path, sys.argv[1:4]))
