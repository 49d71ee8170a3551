"""A small prepared dataset written straight through the shard contract (no vrt-prep run).

Real espeak-ng speech with its exact word times; one word flagged; two speakers; rejected items
in ``summary.json`` and a unit marker. Used by the inspection page and scorer tests.
"""

from __future__ import annotations

import json
from pathlib import Path

from data_prep.sentences import sentence_corpus
from data_prep.shards import UnitShardWriter, write_index
from data_prep.synth import synthesize
from vrt_finetune.shard_format import (
    SUMMARY_FILE,
    SampleWord,
    ShardSample,
    encode_flac,
    unit_marker,
)
from vrt_finetune.targets import build_targets

REJECTS = [
    {"key": "bad-1", "source": "x.wav", "reason": "too_short", "message": "0.05 s is too short"},
    {"key": "bad-2", "source": "y.wav", "reason": "no_timestamps", "message": "no word times"},
]


def make_dataset(root: Path, tokenizer, splits: dict[str, int] | None = None) -> dict:
    """Write ``splits`` (name → samples) of espeak-ng sentences under ``root``.

    Returns:
        Split → list of :class:`ShardSample` written.
    """
    splits = splits or {"train": 3, "test": 2}
    texts = iter(sentence_corpus(sum(splits.values()), seed=7, vocabulary="medical"))
    written: dict[str, list[ShardSample]] = {}
    shards = []
    for unit, (split, n) in enumerate(splits.items()):
        writer = UnitShardWriter(root, split, unit, max_samples=100, max_bytes=1 << 30)
        for i in range(n):
            utt = synthesize(next(texts), lead_silence_s=0.2)
            words = tuple(
                SampleWord(w.word, round(w.start, 4), round(w.end, 4), 0.9, flagged=(k == 1))
                for k, w in enumerate(utt.words)
            )
            targets = build_targets(
                [w.word for w in words],
                [w.end for w in words],
                len(utt.audio),
                tokenizer.encode,
                tokenizer.ids,
            )
            sample = ShardSample(
                key=f"{split}-{i:03d}",
                text=utt.text,
                duration=round(utt.duration, 4),
                targets=targets,
                words=words,
                language="en",
                speaker=f"spk{i % 2}",
                source="synthetic",
            )
            writer.write(sample, encode_flac(utt.audio))
            written.setdefault(split, []).append(sample)
        shards += writer.close()
    write_index(root, shards)
    summary = {"kept_samples": sum(splits.values()), "rejected": 2, "reject_examples": REJECTS}
    (root / SUMMARY_FILE).write_text(json.dumps(summary), encoding="utf-8")
    marker = unit_marker(root, 0)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"examples": REJECTS[:1]}), encoding="utf-8")
    return written
