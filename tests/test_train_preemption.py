"""A ``vrt-train`` process stopped by SIGTERM mid-run checkpoints at the next step, exits
``128 + 15``, and the relaunch with ``--ckpt_path last`` takes the same steps as an
uninterrupted run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_train_data import write_shards

from vrt_finetune.testing import save_tiny_checkpoint

REPO = Path(__file__).resolve().parents[1]
TOTAL = 30
"""Steps of the uninterrupted run; the LR schedule is fixed to it in every run."""


def _cmd(tmp: Path, model: Path, run: str, max_steps: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vrt_finetune.train",
        "fit",
        "--config",
        str(REPO / "recipes" / "train" / "tiny_cpu.yaml"),
        f"--model.base_model={model}",
        "--model.wer_samples=0",
        f"--model.optim.total_steps={TOTAL}",
        f"--data.train_shards={tmp / 'shards' / 'train'}",
        "--data.val_shards=null",
        "--data.batching.batch_seconds=5",
        "--data.num_workers=0",
        "--data.shuffle_buffer=4",
        f"--trainer.max_steps={max_steps}",
        "--trainer.log_every_n_steps=1",
        "--trainer.accumulate_grad_batches=2",  # a step boundary is not every batch
        f"--trainer.default_root_dir={tmp / run}",
        f"--trainer.logger.init_args.save_dir={tmp / run}",
        f"--checkpoint.dirpath={tmp / run / 'ckpt'}",
        "--checkpoint.every_n_train_steps=1",
        *extra,
    ]


def _losses(run_dir: Path) -> dict[int, str]:
    """``step → train/loss`` (as logged, exact text) from every CSV log under ``run_dir``."""
    out: dict[int, str] = {}
    for path in sorted(run_dir.rglob("metrics.csv")):
        with path.open() as f:
            for row in csv.DictReader(f):
                if row.get("train/loss"):
                    out[int(row["step"])] = row["train/loss"]
    return out


@pytest.mark.slow
def test_sigterm_checkpoints_and_relaunch_continues_exactly(tokenizer, tmp_path: Path) -> None:
    model = save_tiny_checkpoint(tmp_path / "model", tokenizer)
    write_shards(tmp_path / "shards", tokenizer, n_shards=2, per_shard=10)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

    full = subprocess.run(
        _cmd(tmp_path, model, "full", TOTAL), cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert full.returncode == 0, full.stderr[-3000:]
    reference = _losses(tmp_path / "full")
    assert len(reference) >= TOTAL - 1

    proc = subprocess.Popen(
        _cmd(tmp_path, model, "cut", TOTAL), cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    ckpt = tmp_path / "cut" / "ckpt"
    deadline = time.monotonic() + 240
    while not (ckpt / "step=000002.ckpt").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint of step 2 appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "--ckpt_path last" in stderr
    assert (ckpt / "last.ckpt").is_file() and (ckpt / "last-adapter").is_dir()
    done = _losses(tmp_path / "cut")
    stopped_at = max(done) + 1
    assert stopped_at < TOTAL - 2, f"the run finished ({stopped_at} steps) before the signal"

    resumed = subprocess.run(
        _cmd(tmp_path, model, "cut", min(stopped_at + 3, TOTAL), "--ckpt_path=last"),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = {s: v for s, v in _losses(tmp_path / "cut").items() if s >= stopped_at}
    assert after, "the relaunch logged no step"
    for step, loss in sorted(after.items()):
        assert loss == reference[step], (step, loss, reference[step])
