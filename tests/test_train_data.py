"""Data module: shard lists, delays, bucketing, node/worker splits, layout vs word timings."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import webdataset as wds

from data_prep.shards import UnitShardWriter
from vrt_finetune import constants as C
from vrt_finetune.batches import Batching, bucket_batches, read_items
from vrt_finetune.data import (
    DelayDistribution,
    ShardListError,
    ShardStream,
    VrtDataModule,
    expand_shards,
)
from vrt_finetune.features import LogMel
from vrt_finetune.layout import IGNORE_INDEX
from vrt_finetune.shard_format import SampleWord, ShardSample, encode_flac
from vrt_finetune.targets import build_targets
from vrt_finetune.tokenizer import StreamIds

WORDS = ["heart", "rate", "was", "normal", "the", "patient", "reports", "mild", "pain", "today"]


def synth_sample(tokenizer, rng: np.random.Generator, key: str) -> tuple[bytes, ShardSample]:
    """Random-ish audio with made-up word timings and their target stream."""
    n_words = int(rng.integers(2, 7))
    seconds = round(float(rng.uniform(0.6, 2.6)), 2)
    n = C.seconds_to_samples(seconds)
    # on the int16 grid, so the flac round trip is exact
    audio = np.round(rng.uniform(-0.3, 0.3, n) * 32767) / 32767
    ends = np.sort(rng.uniform(0.1, seconds, n_words)).round(3)
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), n_words)]
    starts = np.concatenate([[0.0], ends[:-1]])
    targets = build_targets(words, ends.tolist(), n, tokenizer.encode, tokenizer.ids)
    sample = ShardSample(
        key=key,
        text=" ".join(words),
        duration=seconds,
        targets=targets,
        words=tuple(
            SampleWord(w, float(s), float(e), 1.0)
            for w, s, e in zip(words, starts, ends, strict=True)
        ),
        language="en",
        speaker="synthetic",
        source="test",
    )
    return encode_flac(audio), sample


def write_shards(
    out: Path, tokenizer, n_shards: int, per_shard: int, split: str = "train", seed: int = 0
) -> list[Path]:
    """``n_shards`` shards of ``per_shard`` synthetic samples under ``out/split/``."""
    rng = np.random.default_rng(seed)
    paths = []
    for unit in range(n_shards):
        writer = UnitShardWriter(out, split, unit, max_samples=per_shard, max_bytes=1 << 30)
        for i in range(per_shard):
            flac, sample = synth_sample(tokenizer, rng, f"{split}-{unit:02d}-{i:03d}")
            writer.write(sample, flac)
        paths += [out / s.name for s in writer.close()]
    return paths


@pytest.fixture(scope="module")
def shards(tokenizer, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shards")
    write_shards(root, tokenizer, n_shards=4, per_shard=6, split="train")
    write_shards(root, tokenizer, n_shards=1, per_shard=5, split="valid", seed=1)
    return root


def test_expand_shards_globs_braces_dirs_and_urls(shards: Path) -> None:
    tars = sorted(str(p) for p in (shards / "train").glob("*.tar"))
    assert expand_shards(str(shards / "train")) == tars
    assert expand_shards(str(shards / "train" / "*.tar")) == tars
    brace = str(shards / "train" / "train-u0000{0..1}-000.tar")
    assert expand_shards(brace) == tars[:2]
    assert expand_shards([f"pipe:cat {tars[0]}", "s3://b/x-{0..1}.tar"]) == [
        f"pipe:cat {tars[0]}",
        "s3://b/x-0.tar",
        "s3://b/x-1.tar",
    ]
    # a pipe: URL really reads
    assert len(list(read_items([f"pipe:cat {tars[0]}"]))) == 6
    with pytest.raises(ShardListError, match="matches no file"):
        expand_shards([tars[0], str(shards / "nope" / "*.tar")])


def test_delay_distribution_seeded_and_validated() -> None:
    uniform = DelayDistribution()
    draws = [uniform.sample(np.random.default_rng(i)) for i in range(400)]
    assert set(draws) <= set(C.DELAY_CHOICES_MS) and len(set(draws)) > 20
    assert draws == [uniform.sample(np.random.default_rng(i)) for i in range(400)]
    fixed = DelayDistribution([480, 960], [3.0, 1.0])
    rng = np.random.default_rng(0)
    share = np.mean([fixed.sample(rng) == 480 for _ in range(2000)])
    assert 0.7 < share < 0.8
    for bad in ([100], [0], [2480]):
        with pytest.raises(ValueError, match="multiple of 80 ms"):
            DelayDistribution(bad)
    with pytest.raises(ValueError, match="weights"):
        DelayDistribution([480, 960], [1.0])


def test_bucketing_respects_budget(shards: Path) -> None:
    items = list(read_items(expand_shards(str(shards / "train"))))
    batching = Batching(batch_seconds=6.0, max_batch_size=4, bucket_edges_s=[1.2, 1.8])
    batches = list(bucket_batches(iter(items), batching, flush=True))
    assert sorted(it.key for b in batches for it in b) == sorted(it.key for it in items)
    for b in batches:
        assert len(b) <= 4
        assert len(b) == 1 or len(b) * max(it.duration for it in b) <= 6.0
        durations = [it.duration for it in b]
        assert max(durations) - min(durations) < 1.3  # one bucket: similar lengths


def _stream(shards: Path, ids: StreamIds, **kw) -> ShardStream:
    kw.setdefault("train", True)
    return ShardStream(
        expand_shards(str(shards / "train")),
        ids,
        Batching(batch_seconds=5.0, max_batch_size=3, bucket_edges_s=[1.5]),
        shuffle_buffer=5,
        **kw,
    )


def test_train_batches_match_word_timings(shards: Path, tokenizer) -> None:
    """Frame by frame: [W] predicted where the audio first covers the group's end + delay."""
    ids = tokenizer.ids
    L = ids.n_left_pad_tokens
    metas = {}
    for s in wds.tarfile_samples({"url": u} for u in expand_shards(str(shards / "train"))):
        metas[s["__key__"]] = (json.loads(s["json"]), s["flac"])
    log_mel = LogMel()
    n_checked = 0
    for batch in itertools.islice(iter(_stream(shards, ids, seed=3)), 6):
        d = batch["num_delay_tokens"]
        assert batch["delay_ms"] == d * C.TOKEN_MS and batch["delay_ms"] in C.DELAY_CHOICES_MS
        n, s = batch["input_ids"].shape
        assert batch["audio"].shape == (n, s * C.SAMPLES_PER_TOKEN)
        for row, key in enumerate(batch["keys"]):
            meta, flac = metas[key]
            speech, _ = sf.read(io.BytesIO(flac), dtype="float32")
            stream = meta["targets"]["stream"]
            # the stream, extended with [P] over the silence offline decoding also runs through
            frames = max(len(stream), C.samples_to_tokens_ceil(len(speech)) + 10)
            length = 1 + L + d + frames
            ids_row, labels = batch["input_ids"][row], batch["labels"][row]
            # prompt, stream, trailing [P] targets, then batch padding with [P] / -100 / silence
            assert ids_row[0] == tokenizer.bos_id and (ids_row[1 : 1 + L + d] == ids.pad).all()
            assert ids_row[1 + L + d : 1 + L + d + len(stream)].tolist() == stream
            assert (ids_row[1 + L + d + len(stream) :] == ids.pad).all()
            assert (labels[L + d + len(stream) : length - 1] == ids.pad).all()
            assert (labels[length - 1 :] == -100).all()
            assert (labels[: L + d] == IGNORE_INDEX).all()
            audio = batch["audio"][row].numpy()
            left = L * C.SAMPLES_PER_TOKEN
            assert not audio[:left].any() and not audio[left + len(speech) :].any()
            np.testing.assert_array_equal(audio[left : left + len(speech)], speech)
            cursor = 0
            for group in meta["targets"]["groups"]:
                cursor += len(group["words"])  # groups hold consecutive words, in order
                end = meta["words"][cursor - 1]["end"]
                k = L + d + group["start"] - 1  # position that predicts the [W]
                assert labels[k] == tokenizer.word_id
                seen = (k + 1 - L) * C.SAMPLES_PER_TOKEN  # speech samples audio 0..k covers
                end_plus_delay = C.seconds_to_samples(end) + d * C.SAMPLES_PER_TOKEN
                assert seen >= end_plus_delay
                if group["start"] == group["frame"]:  # it did not wait: first such position
                    assert seen - C.SAMPLES_PER_TOKEN < end_plus_delay
                n_checked += 1
        # the log-mel of the batch tensor equals the per-row log-mel
        feats = log_mel(batch["audio"])
        assert feats.shape == (n, C.N_MELS, s * C.MEL_FRAMES_PER_TOKEN)
        torch.testing.assert_close(feats[0], log_mel(batch["audio"][0]))
    assert n_checked > 10


def test_stream_is_reproducible_and_delays_vary(shards: Path, tokenizer) -> None:
    ids = tokenizer.ids
    a = [b["keys"] + [b["delay_ms"]] for b in itertools.islice(iter(_stream(shards, ids)), 12)]
    b = [b["keys"] + [b["delay_ms"]] for b in itertools.islice(iter(_stream(shards, ids)), 12)]
    assert a == b
    assert len({x[-1] for x in a}) > 3
    c = [x["keys"] for x in itertools.islice(iter(_stream(shards, ids, seed=1)), 12)]
    assert c != [x[:-1] for x in a]


def _loader_keys(dataset: ShardStream, n_batches: int, workers: int) -> list[list[str]]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers)
    return [b["keys"] for b in itertools.islice(iter(loader), n_batches)]


def test_workers_split_shards_and_resume_skips_exactly(shards: Path, tokenizer) -> None:
    ids = tokenizer.ids
    full = _loader_keys(_stream(shards, ids), 10, workers=2)
    # round-robin: even batches from worker 0, odd from worker 1, from disjoint shards (first pass)
    shard_of = lambda key: key.split("-")[1]  # noqa: E731
    w0 = {shard_of(k) for batch in full[0:4:2] for k in batch}
    w1 = {shard_of(k) for batch in full[1:4:2] for k in batch}
    assert w0 and w1 and not w0 & w1
    resumed = _loader_keys(_stream(shards, ids, skip_batches=5), 5, workers=2)
    assert resumed == full[5:]


def test_ranks_see_disjoint_shards(shards: Path, tokenizer, monkeypatch) -> None:
    ids = tokenizer.ids
    seen = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        keys = _loader_keys(_stream(shards, ids, rank=rank, world_size=2), 3, workers=0)
        seen.append({k.split("-")[1] for batch in keys for k in batch})
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(RuntimeError, match="webdataset sees rank 0 of 2"):
        next(iter(_stream(shards, ids, rank=1, world_size=2)))


def test_datamodule_validation_loaders_and_state(shards: Path, tokenizer) -> None:
    dm = VrtDataModule(
        train_shards=str(shards / "train"),
        val_shards=str(shards / "valid" / "*.tar"),
        tokenizer=str(tokenizer.path),
        val_delays_ms=[240, 2400],
        num_workers=0,
    )
    dm.setup("fit")
    loaders = dm.val_dataloader()
    assert len(loaders) == 2
    for loader, ms in zip(loaders, [240, 2400], strict=True):
        batches = list(loader)
        assert {b["delay_ms"] for b in batches} == {ms}
        assert sum(len(b["keys"]) for b in batches) == 5
        batch = dm.on_after_batch_transfer(batches[0], 0)
        assert "audio" not in batch and batch["input_features"].shape[1] == C.N_MELS
    samples = dm.wer_samples(3)
    assert len(samples) == 3 and samples[0][1].dtype == np.float32 and samples[0][2]
    assert all(lang == "en" for *_, lang in samples)  # write_shards' language, for the WER
    dm.load_state_dict({"batches_consumed": 7, "world_size": 1, "num_workers": 0})
    assert dm.state_dict()["batches_consumed"] == 7
    with pytest.raises(ShardListError, match="matches no file"):
        VrtDataModule(train_shards="/nonexistent/*.tar", tokenizer=str(tokenizer.path)).setup("fit")
    with pytest.raises(ValueError, match="multiple of 80 ms"):
        VrtDataModule(tokenizer=str(tokenizer.path), val_delays_ms=[500])
