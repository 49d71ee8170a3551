"""A disk that fills up mid-write: a clear error naming the path, nothing half-written left
where a later step would read it, and a rerun after space is freed finishes the job.

Real size limits: a small tmpfs mounted for the test (root only; skipped elsewhere), partly
filled with a ballast file that the test deletes to "free space".
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch
from test_train_data import write_shards

from data_prep.cli import run
from data_prep.config import load_config
from vrt_finetune.batches import Batching
from vrt_finetune.data import VrtDataModule
from vrt_finetune.io_utils import DiskFullError
from vrt_finetune.lit_module import VrtLitModule
from vrt_finetune.lora import LoraSettings
from vrt_finetune.tokenizer import build_test_tokenizer
from vrt_finetune.train import AdapterCheckpoint
from vrt_finetune.train_settings import OptimSettings, TinyModel

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "data" / "synthetic_demo.yaml"


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _ballast(disk: Path, leave: int) -> Path:
    """Fill ``disk`` until about ``leave`` bytes are free."""
    import shutil

    path = disk / "ballast"
    path.write_bytes(b"\0" * max(0, shutil.disk_usage(disk).free - leave))
    return path


def _manifest(tmp_path: Path, n: int = 24, seconds: float = 3.0) -> Path:
    """Noise recordings (FLAC compresses them poorly: ~90 kB each) with given word times."""
    rows = []
    for i in range(n):
        audio = (0.1 * np.random.default_rng(i).standard_normal(int(seconds * 16000))).astype(
            np.float32
        )
        sf.write(tmp_path / f"a{i}.wav", audio, 16000)
        words = [{"word": w, "start": 0.5 * k, "end": 0.5 * k + 0.4} for k, w in
                 enumerate(["one", "two", "three", "four"])]  # fmt: skip
        (tmp_path / f"a{i}.json").write_text(json.dumps({"word_segments": words}))
        rows.append({"audio": f"a{i}.wav", "text": "one two three four", "id": f"r{i:02d}",
                     "alignment": f"a{i}.json"})  # fmt: skip
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(out: Path, manifest: Path, tokenizer: Path):
    return load_config(
        RECIPE,
        [
            "source.kind=manifest",
            f"source.path={manifest}",
            f"output={out}",
            f"tokenizer={tokenizer}",
            "shards.items_per_unit=6",
            "shards.max_samples=3",
            "shards.valid_fraction=0",
            "shards.test_fraction=0",
            "workers=1",
        ],
    )


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.tar"))
    }


def test_prep_fills_the_disk_then_resumes(tmp_path, small_disk) -> None:
    tokenizer = build_test_tokenizer(tmp_path / "tok")
    manifest = _manifest(tmp_path)
    reference = tmp_path / "reference"
    run(_config(reference, manifest, tokenizer), progress=False)

    out = small_disk / "shards"
    ballast = _ballast(small_disk, leave=900_000)
    with pytest.raises(DiskFullError) as info:
        run(_config(out, manifest, tokenizer), progress=False)
    message = str(info.value)
    assert str(out) in message and "no space left" in message and "run the same command" in message
    assert not list(out.rglob("*.tmp")), "a half-written shard was left behind"
    assert not (out / "index.json").exists()
    written = _tree(out)
    assert written and all(reference_hash == _tree(reference)[name]
                           for name, reference_hash in written.items())  # fmt: skip

    ballast.unlink()  # space freed: the same command finishes the job
    summary = run(_config(out, manifest, tokenizer), progress=False)
    assert summary is not None and summary["kept_samples"] == 24
    assert _tree(out) == _tree(reference)


def test_checkpoint_write_fills_the_disk(tmp_path, small_disk, tokenizer) -> None:
    write_shards(tmp_path / "shards", tokenizer, n_shards=1, per_shard=6)

    def fit(dirpath: Path) -> None:
        module = VrtLitModule(
            tiny=TinyModel(hidden=64, heads=2, kv_heads=1),
            tokenizer=str(tokenizer.path),
            dtype="fp32",
            lora=LoraSettings(rank=16, train_projector=True),
            optim=OptimSettings(lr=1e-3, warmup_steps=1),
            wer_samples=0,
        )
        data = VrtDataModule(
            train_shards=str(tmp_path / "shards" / "train"),
            tokenizer=str(tokenizer.path),
            batching=Batching(batch_seconds=5.0, max_batch_size=3),
            num_workers=0,
        )
        ckpt = AdapterCheckpoint(dirpath=dirpath, every_n_train_steps=2, save_last=True)
        trainer = L.Trainer(accelerator="cpu", max_steps=2, limit_val_batches=0, logger=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[ckpt])  # fmt: skip
        trainer.fit(module, data)

    ckpts = small_disk / "ckpt"
    ballast = _ballast(small_disk, leave=60_000)
    with pytest.raises(DiskFullError) as info:
        fit(ckpts)
    assert str(ckpts) in str(info.value) and "no space left" in str(info.value)
    left = sorted(ckpts.rglob("*")) if ckpts.exists() else []
    assert not [p for p in left if "partial" in p.name or p.name.endswith(".tmp")], left
    for path in left:  # what is there is whole: Lightning writes checkpoints atomically
        if path.suffix == ".ckpt":
            assert "state_dict" in torch.load(path, weights_only=False)
    ballast.unlink()
    fit(ckpts)
    assert (ckpts / "last.ckpt").is_file() and (ckpts / "last-adapter").is_dir()
