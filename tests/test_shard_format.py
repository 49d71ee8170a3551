"""The shard contract: FLAC codec, the sample JSON and its versions, the dataset directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.audio_io import load_audio
from vrt_finetune.constants import SAMPLE_RATE
from vrt_finetune.shard_format import (
    INDEX_FILE,
    SAMPLE_FORMAT,
    SampleWord,
    ShardFormatError,
    ShardSample,
    decode_flac,
    encode_flac,
    from_tar_sample,
    split_shards,
    to_tar_sample,
)
from vrt_finetune.targets import Group, TargetOptions, Targets


def _sample(**changes) -> ShardSample:
    targets = Targets(
        stream=(5, 33, 700, 5, 5),
        groups=(Group(frame=2, start=2, words=("Hello,",), ids=(33, 700)),),
        options=TargetOptions(),
    )
    fields = {
        "key": "utt-1",
        "text": "Hello,",
        "duration": 0.4000049,
        "targets": targets,
        "words": (SampleWord("Hello,", 0.0400004, 0.16, 0.91234567, False),),
        "language": "en",
        "speaker": "spk1",
        "source": "manifest.jsonl:1",
        "offset": 12.5,
    }
    return ShardSample(**{**fields, **changes})


def test_flac_round_trip_is_deterministic() -> None:
    x = (np.random.default_rng(0).standard_normal(SAMPLE_RATE) * 0.2).astype(np.float32)
    x[:3] = [1.5, -1.5, 1.0]  # out-of-range values are clipped, not wrapped
    data = encode_flac(x)
    assert data[:4] == b"fLaC" and encode_flac(x.copy()) == data
    y = decode_flac(data)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, np.clip(x, -1, 1), atol=1.5 / 32768)
    np.testing.assert_array_equal(load_audio(data), y)


def test_flac_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        encode_flac(np.array([0.0, np.nan]))
    with pytest.raises(ShardFormatError, match="not a FLAC stream"):
        decode_flac(b"not flac")
    sf.write(tmp_path / "a.flac", np.zeros(800, np.float32), 8_000)
    with pytest.raises(ShardFormatError, match="16000 Hz mono"):
        decode_flac((tmp_path / "a.flac").read_bytes())


def test_sample_json_is_sorted_rounded_and_round_trips() -> None:
    sample = _sample()
    raw = sample.to_json()
    meta = json.loads(raw)
    assert list(meta) == sorted(meta)  # byte-stable: keys sorted
    assert meta["format"] == SAMPLE_FORMAT
    assert meta["duration"] == 0.4 and meta["words"][0]["start"] == 0.04
    assert meta["words"][0]["score"] == 0.9123
    assert meta["targets"]["stream"] == [5, 33, 700, 5, 5]
    back = ShardSample.from_json("utt-1", raw)
    assert back.targets == sample.targets and back.text == "Hello," and back.offset == 12.5
    assert back.words == (SampleWord("Hello,", 0.04, 0.16, 0.9123, False),)
    assert back.to_json() == raw  # a second trip changes nothing


def test_tar_members() -> None:
    sample = _sample()
    members = to_tar_sample(sample, b"fLaC...")
    assert members["__key__"] == "utt-1" and members["flac"] == b"fLaC..."
    parsed, flac = from_tar_sample(members)
    assert parsed.key == "utt-1" and flac == b"fLaC..."
    with pytest.raises(ShardFormatError, match=r"utt-1 in x\.tar: no flac"):
        from_tar_sample({"__key__": "utt-1", "__url__": "x.tar", "json": members["json"]})


def test_older_shards_without_format_field_still_load() -> None:
    meta = json.loads(_sample().to_json())
    del meta["format"]  # shards written before the field existed
    assert ShardSample.from_json("k", json.dumps(meta)).format == 1


def test_newer_format_and_missing_targets_say_what_to_do() -> None:
    meta = json.loads(_sample().to_json())
    with pytest.raises(ShardFormatError, match=r"format 99.*upgrade"):
        ShardSample.from_json("k", json.dumps({**meta, "format": 99}))
    del meta["targets"]
    with pytest.raises(ShardFormatError, match=r"sample k:.*vrt-prep run"):
        ShardSample.from_json("k", json.dumps(meta))
    with pytest.raises(ShardFormatError, match="not JSON"):
        ShardSample.from_json("k", b"{")


def test_split_shards(tmp_path: Path) -> None:
    with pytest.raises(ShardFormatError, match="vrt-prep merge"):
        split_shards(tmp_path, "test")
    index = {"shards": [{"name": "train/a.tar", "split": "train"}]}
    (tmp_path / INDEX_FILE).write_text(json.dumps(index))
    assert split_shards(tmp_path, "train") == [str(tmp_path / "train/a.tar")]
    with pytest.raises(ShardFormatError, match="no 'test' shards"):
        split_shards(tmp_path, "test")
