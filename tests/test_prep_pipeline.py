"""vrt-prep end to end on espeak-ng speech: round trip, determinism, resume after a kill, ranks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import webdataset as wds

from data_prep import pipeline, unit_processor
from data_prep.cli import main as prep_main
from data_prep.cli import run
from data_prep.config import load_config
from vrt_finetune import constants as C
from vrt_finetune.targets import Targets, build_targets

N_GENERAL, N_MEDICAL = 9, 4


def config(out: Path, tokenizer, **overrides):
    base = {
        "name": "t",
        "output": str(out),
        "tokenizer": str(tokenizer.path),
        "source.kind": "synthetic",
        "source.n_general": N_GENERAL,
        "source.n_medical": N_MEDICAL,
        "aligner.backend": "given",
        "shards.items_per_unit": 3,
        "shards.max_samples": 2,
        "shards.valid_fraction": 0.2,
        "shards.test_fraction": 0.2,
    }
    base.update(overrides)
    return load_config(None, [f"{k}={json.dumps(v)}" for k, v in base.items()])


def tree(out: Path) -> dict[str, bytes]:
    """Every shard and the index, by relative path (markers hold no shard data)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.tar"))} | {
        "index.json": (out / "index.json").read_bytes()
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tokenizer) -> Path:
    out = tmp_path_factory.mktemp("ref")
    run(config(out, tokenizer), progress=False)
    return out


def test_round_trip(reference: Path, tokenizer) -> None:
    index = json.loads((reference / "index.json").read_text())
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["kept_samples"] == N_GENERAL + N_MEDICAL and summary["rejected"] == 0
    assert sum(s["samples"] for s in index["splits"].values()) == N_GENERAL + N_MEDICAL
    assert all(s["n_samples"] <= 2 for s in index["shards"])
    seen = 0
    for shard in index["shards"]:
        path = reference / shard["name"]
        samples = list(wds.WebDataset(str(path), shardshuffle=False))
        assert [s["__key__"] for s in samples] == shard["samples"]
        for s in samples:
            meta = json.loads(s["json"])
            audio, sr = sf.read(io.BytesIO(s["flac"]), dtype="float32")
            assert sr == C.SAMPLE_RATE and audio.ndim == 1
            assert len(audio) / sr == pytest.approx(meta["duration"], abs=1e-3)
            words = meta["words"]
            assert " ".join(w["word"] for w in words) == meta["text"]
            assert all(0 <= w["start"] < w["end"] <= meta["duration"] + 1e-3 for w in words)
            # the stored targets are exactly the pure function of the stored words and times
            rebuilt = build_targets(
                [w["word"] for w in words],
                [w["end"] for w in words],
                len(audio),
                tokenizer.encode,
                tokenizer.ids,
            )
            assert Targets.from_json(meta["targets"]) == rebuilt
            seen += 1
    assert seen == N_GENERAL + N_MEDICAL
    card = (reference / "README.md").read_text()
    assert "Tokenizer fertility" in card and (reference / "duration_histogram.png").exists()


def test_same_input_gives_byte_identical_shards(reference: Path, tmp_path, tokenizer) -> None:
    run(config(tmp_path, tokenizer), progress=False)
    assert tree(tmp_path) == tree(reference)


def test_killed_run_resumes_to_the_same_shards(
    reference: Path, tmp_path, tokenizer, monkeypatch
) -> None:
    real_write = unit_processor.UnitShardWriter.write
    calls = {"n": 0}

    def dying_write(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # mid-unit, after earlier units finished and a shard rolled over
            raise KeyboardInterrupt("killed")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(unit_processor.UnitShardWriter, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        run(config(tmp_path, tokenizer), progress=False)
    assert not (tmp_path / "index.json").exists()
    finished = sorted(p.name for p in (tmp_path / "_units").glob("*.json"))
    assert 0 < len(finished) < 5
    # a stale temporary from a hard kill is cleaned up too
    (tmp_path / "train" / ".train-u00009-000.tar.tmp").write_bytes(b"partial")
    monkeypatch.setattr(unit_processor.UnitShardWriter, "write", real_write)
    run(config(tmp_path, tokenizer), progress=False)
    assert tree(tmp_path) == tree(reference)
    assert not list(tmp_path.rglob("*.tmp"))


def test_ranks_split_the_work_and_merge(reference: Path, tmp_path, tokenizer) -> None:
    for rank in (0, 1):
        assert run(config(tmp_path, tokenizer), rank=rank, world_size=2, progress=False) is None
    assert not (tmp_path / "index.json").exists()
    assert prep_main(["merge", "--output", str(tmp_path)]) == 0
    assert tree(tmp_path) == tree(reference)


def test_rank_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("SLURM_PROCID", "2")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert pipeline.rank_and_world() == (2, 4)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert pipeline.rank_and_world() == (1, 3)
    with pytest.raises(ValueError, match="outside"):
        pipeline.rank_and_world(5, 2)


def test_speaker_split_is_deterministic_and_exclusive() -> None:
    from data_prep.sources import SourceItem

    def item(key: str, spk: str | None):
        return SourceItem(key, None, "x", "en", "t", speaker=spk)

    splits = {unit_processor.split_of(item(f"k{i}", "alice"), 0.3, 0.3) for i in range(50)}
    assert len(splits) == 1  # one speaker, one split
    by_key = [unit_processor.split_of(item(f"k{i}", None), 0.3, 0.3) for i in range(300)]
    assert set(by_key) == {"train", "valid", "test"}
    assert by_key == [unit_processor.split_of(item(f"k{i}", None), 0.3, 0.3) for i in range(300)]
    assert np.mean([s == "train" for s in by_key]) == pytest.approx(0.4, abs=0.1)
