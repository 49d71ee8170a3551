"""Verified shards and counted skips: nothing is lost between the shards and the optimizer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from test_train_data import synth_sample

from data_prep.shards import UnitShardWriter, write_index
from vrt_finetune.batches import Batching, ReadCounts, bucket_batches, collate, read_items
from vrt_finetune.data import DataLossError, VrtDataModule
from vrt_finetune.shard_verify import (
    ShardVerificationError,
    verify_dataset,
    verify_shard_list,
)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VRT_CACHE_DIR", str(tmp_path / "cache"))


def make_dataset(root: Path, tokenizer, units: int = 2, per_unit: int = 5) -> Path:
    rng = np.random.default_rng(0)
    infos = []
    for unit in range(units):
        writer = UnitShardWriter(root, "train", unit, max_samples=per_unit, max_bytes=1 << 30)
        for i in range(per_unit):
            flac, sample = synth_sample(tokenizer, rng, f"u{unit}-{i:02d}")
            writer.write(sample, flac)
        infos += writer.close()
    write_index(root, infos)
    return root


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_clean_dataset_verifies_and_is_cached(tmp_path, tokenizer) -> None:
    root = make_dataset(tmp_path / "d", tokenizer)
    checks = verify_dataset(root)
    assert len(checks) == 2 and all(c.ok for c in checks)
    urls = [str(c.path) for c in checks]
    assert verify_shard_list(urls) == 2
    # the second start-up reads nothing: both shards come from the cache
    from vrt_finetune.shard_verify import verify_entries

    again = verify_entries([(c.path, {"name": c.name, "sha256": "x"}) for c in checks])
    assert not any(c.cached for c in again)  # another checksum is never taken from the cache


def test_flipped_byte_truncation_and_missing_shard_are_named(tmp_path, tokenizer) -> None:
    root = make_dataset(tmp_path / "d", tokenizer)
    verify_shard_list([str(p) for p in sorted((root / "train").glob("*.tar"))])  # fills cache
    first, second = sorted((root / "train").glob("*.tar"))
    flip_byte(first, 3000)  # inside a sample's payload: the tar still reads
    checks = verify_dataset(root)
    assert [c.ok for c in checks] == [False, True]
    assert "sha256 differs" in checks[0].problem
    # a changed file is checked again at start-up, not taken from the cache, and refused
    with pytest.raises(ShardVerificationError) as info:
        verify_shard_list([str(first), str(second)])
    message = str(info.value)
    assert str(first) in message and "unit-00000.json" in message and "vrt-prep run" in message
    second.write_bytes(second.read_bytes()[:2048])
    checks = verify_dataset(root)
    assert not checks[1].ok and "samples" in checks[1].problem
    first.unlink()
    assert verify_dataset(root)[0].problem == "missing"


def test_training_refuses_a_damaged_shard(tmp_path, tokenizer) -> None:
    root = make_dataset(tmp_path / "d", tokenizer)
    flip_byte(sorted((root / "train").glob("*.tar"))[1], 3000)
    dm = VrtDataModule(train_shards=str(root / "train"), tokenizer=str(tokenizer.path))
    with pytest.raises(ShardVerificationError, match=r"train-u00001-000\.tar"):
        dm.setup("fit")
    VrtDataModule(
        train_shards=str(root / "train"), tokenizer=str(tokenizer.path), verify=False
    ).setup("fit")


def _corrupt_flac_of_one_sample(shard: Path) -> None:
    """Overwrite the middle of the first FLAC member: the tar stays valid, the audio does not."""
    data = bytearray(shard.read_bytes())
    start = data.find(b"fLaC")
    data[start : start + 64] = bytes(64)
    shard.write_bytes(bytes(data))


def test_damaged_samples_are_counted_by_reason(tmp_path, tokenizer) -> None:
    root = make_dataset(tmp_path / "d", tokenizer)
    first, second = sorted((root / "train").glob("*.tar"))
    _corrupt_flac_of_one_sample(first)
    second.write_bytes(second.read_bytes()[:3000])  # cut short mid-sample
    counts = ReadCounts()
    items = list(read_items([str(first), str(second)], counts))
    batches = [
        collate(plan, 480, tokenizer.ids, counts)
        for plan in bucket_batches(iter(items), Batching(batch_seconds=100), True, counts)
    ]
    got = counts.take()
    assert got["skipped"] == {"undecodable_audio": 1, "unreadable_shard": 1}
    n_kept = sum(len(b["keys"]) for b in batches if b is not None)
    assert n_kept == got["read"] - 1 == len(items) - 1


def test_threshold_stops_a_run_that_loses_too_much(tokenizer) -> None:
    dm = VrtDataModule(tokenizer=str(tokenizer.path), max_skipped_fraction=0.001)
    dm._count({"read": 500, "skipped": {"undecodable_audio": 1}}, "train")  # 1 ≤ 0.001 × 1000
    dm._count({"read": 500, "skipped": {"longer_than_max_duration": 50}}, "train")  # not damage
    with pytest.raises(DataLossError, match=r"2 of 1002 training samples.*vrt-prep verify"):
        dm._count({"read": 0, "skipped": {"bad_sample": 1}}, "train")
    state = dm.state_dict()
    fresh = VrtDataModule(tokenizer=str(tokenizer.path))
    fresh.load_state_dict(state)  # the counts survive a resume
    assert fresh.sample_counts["train"].skipped["bad_sample"] == 1
    assert "1000 samples read" in fresh.summary()


def test_cache_entry_is_keyed_on_mtime(tmp_path, tokenizer) -> None:
    root = make_dataset(tmp_path / "d", tokenizer, units=1)
    (shard,) = (root / "train").glob("*.tar")
    verify_shard_list([str(shard)])
    from vrt_finetune.shard_verify import verify_entries

    entry = verify_dataset(root)[0]
    index_entry = {"name": entry.name, "sha256": __import__("json").loads(
        (root / "index.json").read_text())["shards"][0]["sha256"]}  # fmt: skip
    assert verify_entries([(shard, index_entry)])[0].cached
    st = shard.stat()
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert not verify_entries([(shard, index_entry)])[0].cached


def test_vrt_prep_verify_inspect_and_score_commands(tmp_path, tokenizer, capsys) -> None:
    from data_prep.cli import main

    root = make_dataset(tmp_path / "d", tokenizer)
    assert main(["verify", str(root)]) == 0
    assert "2 shards checked" in capsys.readouterr().out
    flip_byte(sorted((root / "train").glob("*.tar"))[0], 3000)
    assert main(["verify", str(root), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "BAD  train/train-u00000-000.tar: sha256 differs" in out
    assert "unit-00000.json && vrt-prep run --config" in out and "prep_config.yaml" in out
    assert main(["verify", str(tmp_path / "nothing")]) == 1
    assert "no index.json" in capsys.readouterr().err

    clean = make_dataset(tmp_path / "e", tokenizer)
    assert main(["inspect", str(clean), "--per_split", "3"]) == 0
    assert (clean / "inspect.html").stat().st_size > 10_000
    assert main(["score", str(clean), "--reference", str(clean)]) == 0
    report = __import__("json").loads((clean / "score" / "score.json").read_text())
    assert report["overall"]["matched"] > 20 and report["overall"]["missing"] == 0


def test_eval_reports_samples_it_cannot_read(tmp_path, tokenizer) -> None:
    from vrt_finetune.evaluate import load_samples

    root = make_dataset(tmp_path / "d", tokenizer)
    first, second = sorted((root / "train").glob("*.tar"))
    _corrupt_flac_of_one_sample(first)
    second.write_bytes(second.read_bytes()[:3000])
    counts = ReadCounts()
    samples = load_samples([str(root)], split="train", counts=counts)
    assert counts.skipped == {"undecodable_audio": 1, "unreadable_shard": 1}
    assert len(samples) == counts.read - 1


def test_unverified_training_stops_when_it_loses_too_much(tmp_path, tokenizer) -> None:
    """Verification off: the damaged sample is counted and the threshold stops the run."""
    import lightning as L

    from vrt_finetune.lit_module import VrtLitModule
    from vrt_finetune.lora import LoraSettings
    from vrt_finetune.train_settings import OptimSettings, TinyModel

    root = make_dataset(tmp_path / "d", tokenizer)
    _corrupt_flac_of_one_sample(sorted((root / "train").glob("*.tar"))[0])
    module = VrtLitModule(
        tiny=TinyModel(hidden=32, heads=2, kv_heads=1),
        tokenizer=str(tokenizer.path),
        dtype="fp32",
        lora=LoraSettings(rank=4),
        optim=OptimSettings(lr=1e-3, warmup_steps=1),
        wer_samples=0,
    )
    data = VrtDataModule(
        train_shards=str(root / "train"),
        tokenizer=str(tokenizer.path),
        batching=Batching(batch_seconds=5.0, max_batch_size=3),
        num_workers=0,
        verify=False,
        max_skipped_fraction=0.0,
    )
    trainer = L.Trainer(accelerator="cpu", max_steps=6, limit_val_batches=0, logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False)  # fmt: skip
    with pytest.raises(DataLossError, match=r"undecodable_audio"):
        trainer.fit(module, data)
