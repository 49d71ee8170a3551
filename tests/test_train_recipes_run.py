"""The single-device training recipes run as written, up to where they need a GPU.

Each runs its own launch command in a fresh directory laid out as the recipe expects: the shards
at the recipe's paths (where the data recipes write them), and for the hub base model a local
Hugging Face cache holding a tiny model under the released model's id, as a machine where the
model was downloaded once has it (``HF_HUB_OFFLINE=1``). Only what this machine cannot do (or
not in time) is overridden: the CPU for the GPU, fp32 for bf16 autocast, eager layers for compiled
ones, and two steps for thousands. The FSDP recipes need several GPUs; ``test_train_recipes.py``
parses them.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_data import write_shards

from vrt_finetune.testing import fill_hub_cache, save_tiny_checkpoint

REPO = Path(__file__).resolve().parents[1]
HUB_ID = "mistralai/Voxtral-Mini-4B-Realtime-2602"
CPU = [
    "--trainer.accelerator=cpu",
    "--trainer.precision=32-true",
    "--model.dtype=fp32",
    "--model.compile_layers=false",  # compiles on a CPU too, in minutes: test_train_compile.py
    "--trainer.max_steps=2",
    "--trainer.val_check_interval=2",
    "--data.num_workers=0",
    "--model.wer_samples=2",
]
CASES = {
    "medical.yaml": ("outputs/medical/shards", [*CPU, "--data.batching.batch_seconds=20"]),
    "new_language.yaml": ("outputs/new_language/shards", [*CPU, "--model.lora.rank=4"]),
    "tiny_cpu.yaml": ("outputs/demo/shards", ["--trainer.max_steps=2", "--data.num_workers=0"]),
}


def _launch(recipe: str) -> list[str]:
    first = (REPO / "recipes" / "train" / recipe).read_text().splitlines()[0]
    args = shlex.split(first.removeprefix("# vrt-train "))
    return [str(REPO / a) if a.startswith("recipes/") else a for a in args]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(CASES))
def test_recipe_runs_as_written(recipe: str, tmp_path: Path, tokenizer) -> None:
    shards, overrides = CASES[recipe]
    write_shards(tmp_path / shards, tokenizer, n_shards=2, per_shard=4)
    write_shards(tmp_path / shards, tokenizer, n_shards=1, per_shard=2, split="valid", seed=1)
    model = save_tiny_checkpoint(tmp_path / "model", tokenizer)
    if recipe == "tiny_cpu.yaml":  # what `make demo` leaves
        model.rename(tmp_path / "outputs" / "demo" / "base-model")
    else:
        fill_hub_cache(tmp_path / "hub", HUB_ID, model)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "vrt_finetune.train", *_launch(recipe), *overrides]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [p for p in tmp_path.rglob("checkpoints") if p.is_dir()]
    assert runs and any(runs[0].glob("*.ckpt")), proc.stderr[-2000:]
