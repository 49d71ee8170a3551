"""Shards other tools read: ``datasets.load_dataset("webdataset", ...)`` loads them as they are,
and ``vrt-prep export --to lhotse`` writes a CutSet that lhotse loads back with the same texts,
word times and audio."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lhotse_corpus import make_corpus

from data_prep.cli import main as prep_main
from data_prep.cli import run
from data_prep.config import load_config
from data_prep.dataset_reader import dataset_splits, iter_samples
from data_prep.lhotse_export import cuts_file
from vrt_finetune.shard_format import decode_flac


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tokenizer) -> Path:
    """A dataset made by ``vrt-prep`` (speakers known for some samples, not for another)."""
    corpus = make_corpus(tmp_path_factory.mktemp("corpus"))
    out = tmp_path_factory.mktemp("prepared")
    overrides = {
        "output": str(out),
        "tokenizer": str(tokenizer.path),
        "source.kind": "lhotse",
        "source.path": str(corpus.cutset_path),
        "aligner.backend": "given",
        "shards.items_per_unit": 2,
        "shards.valid_fraction": 0.25,
        "shards.test_fraction": 0.25,
    }
    run(load_config(None, [f"{k}={json.dumps(v)}" for k, v in overrides.items()]), progress=False)
    return out


def _by_split(root: Path) -> dict[str, list]:
    return {split: list(iter_samples(shards)) for split, shards in dataset_splits(root).items()}


def test_datasets_loads_the_shards_as_they_are(prepared, tmp_path) -> None:
    """flac as audio, json as a dict, with no argument beyond the files."""
    import datasets

    splits = dataset_splits(prepared)
    assert len(splits) >= 2  # several splits, a speaker missing in one
    loaded = datasets.load_dataset(
        "webdataset",
        data_files={split: [str(p) for p in shards] for split, shards in splits.items()},
        cache_dir=str(tmp_path),
    )
    for split, samples in _by_split(prepared).items():
        rows = loaded[split]
        assert isinstance(rows.features["flac"], datasets.Audio)
        assert [r["__key__"] for r in rows] == [s.key for s, _ in samples]
        for row, (sample, flac) in zip(rows, samples, strict=True):
            decoded = row["flac"].get_all_samples()
            assert decoded.sample_rate == 16000
            np.testing.assert_array_equal(decoded.data.numpy()[0], decode_flac(flac))
            meta = row["json"]
            assert meta == json.loads(sample.to_json())
            assert meta["speaker"] == (sample.speaker or "")


def test_export_to_lhotse_loads_back_with_lhotse(prepared, tmp_path) -> None:
    from lhotse import CutSet

    out = tmp_path / "lhotse"
    argv = ["export", str(prepared), "--to", "lhotse", "--out", str(out)]
    assert prep_main(argv) == 0
    first = {}
    for split in dataset_splits(prepared):
        first[split] = [c.to_dict() for c in CutSet.from_file(cuts_file(out, split))]
    for split, samples in _by_split(prepared).items():
        cuts = CutSet.from_file(cuts_file(out, split))
        assert [c.id for c in cuts] == [s.key for s, _ in samples]
        for cut, (sample, flac) in zip(cuts, samples, strict=True):
            (sup,) = cut.supervisions
            assert (sup.text, sup.speaker, sup.language) == (
                sample.text,
                sample.speaker,
                sample.language,
            )
            words = sup.alignment["word"]
            assert [(a.symbol, a.start, a.end) for a in words] == [
                (w.word, w.start, w.end) for w in sample.words
            ]
            assert sup.custom["flagged_words"] == [
                i for i, w in enumerate(sample.words) if w.flagged
            ]
            np.testing.assert_array_equal(cut.load_audio()[0], decode_flac(flac))
            assert Path(cut.recording.sources[0].source).read_bytes() == flac
    assert prep_main(argv) == 0  # a rerun writes the same cuts
    for split, cuts in first.items():
        assert [c.to_dict() for c in CutSet.from_file(cuts_file(out, split))] == cuts
