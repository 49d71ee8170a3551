"""Two-process DDP on CPU (gloo) through the real CLI: disjoint data, identical adapters."""

from __future__ import annotations

import json
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


def test_ddp_two_ranks_disjoint_data_identical_adapters(tokenizer, tmp_path: Path) -> None:
    model = save_tiny_checkpoint(tmp_path / "model", tokenizer)
    # 4 shards × 10 samples; each rank trains on fewer samples than its 2 shards hold, so
    # everything it sees comes from the first pass over its own shards
    write_shards(tmp_path / "shards", tokenizer, n_shards=4, per_shard=10)
    write_shards(tmp_path / "shards", tokenizer, n_shards=1, per_shard=3, split="valid", seed=1)
    audit, ckpt = tmp_path / "audit", tmp_path / "ckpt"
    cmd = [
        sys.executable,
        "-m",
        "vrt_finetune.train",
        "fit",
        "--config",
        "recipes/train/tiny_cpu.yaml",
        f"--model.base_model={model}",
        "--model.wer_samples=2",
        f"--data.train_shards={tmp_path / 'shards' / 'train'}",
        f"--data.val_shards={tmp_path / 'shards' / 'valid'}",
        "--data.batching.batch_seconds=5",
        "--data.num_workers=0",
        "--data.shuffle_buffer=4",
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.max_steps=3",
        "--trainer.val_check_interval=3",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        f"--checkpoint.dirpath={ckpt}",
        "--checkpoint.every_n_train_steps=3",
        "--trainer.callbacks+=vrt_finetune.train.DataAudit",
        f"--trainer.callbacks.dirpath={audit}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((audit / f"rank{r}.json").read_text()) for r in (0, 1)]
    keys = [set(r["keys"]) for r in ranks]
    assert keys[0] and keys[1] and not keys[0] & keys[1]
    shards = [{k.split("-")[1] for k in ks} for ks in keys]
    assert not shards[0] & shards[1]  # split by node at shard level
    assert ranks[0]["params"] == ranks[1]["params"]
    assert (ckpt / "step=000003.ckpt").is_file()
    assert (ckpt / "step=000003-adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_a_dead_rank_does_not_hang_the_other(tokenizer, tmp_path: Path) -> None:
    """Rank 1 is killed (SIGKILL) mid-run: rank 0 exits non-zero within a bounded time (gloo
    reports the closed connection at the next collective) with a message naming the cause."""
    model = save_tiny_checkpoint(tmp_path / "model", tokenizer)
    write_shards(tmp_path / "shards", tokenizer, n_shards=4, per_shard=10)
    ckpt = tmp_path / "ckpt"
    cmd = [
        sys.executable, "-m", "vrt_finetune.train", "fit",
        "--config", "recipes/train/tiny_cpu.yaml",
        f"--model.base_model={model}", "--model.wer_samples=0",
        f"--data.train_shards={tmp_path / 'shards' / 'train'}", "--data.val_shards=null",
        "--data.batching.batch_seconds=5", "--data.num_workers=0", "--data.shuffle_buffer=4",
        "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.max_steps=100000",
        "--trainer.logger=false", f"--trainer.default_root_dir={tmp_path / 'run'}",
        f"--checkpoint.dirpath={ckpt}", "--checkpoint.every_n_train_steps=2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 240
    while not (ckpt / "step=000002.ckpt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "training did not start"
        time.sleep(0.1)
    (rank1,) = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    os.kill(int(rank1), signal.SIGKILL)
    t0 = time.monotonic()
    _, stderr = proc.communicate(timeout=120)
    waited = time.monotonic() - t0
    assert proc.returncode not in (0, None), stderr[-2000:]
    assert waited < 60, f"rank 0 took {waited:.0f} s to notice"
    assert "another rank stopped" in stderr, stderr[-2000:]
