"""Sample-to-batch steps: tar sample → Item → shuffle buffer → duration bucket → padded batch.

Nothing here knows about shard lists, ranks, DataLoader workers or Lightning:
``vrt_finetune.data.ShardStream`` runs these steps in each worker and ``VrtDataModule`` wires
them into training. Kept apart so that the batching rules and the batch layout can be read,
tested and reused (benchmarks) without the streaming machinery.

Right padding in :func:`collate` is safe because the model is causal end to end (see
``vrt_finetune.data``).
"""

from __future__ import annotations

import bisect
import logging
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
import webdataset as wds

from vrt_finetune import constants as C
from vrt_finetune.layout import IGNORE_INDEX, layout_example
from vrt_finetune.shard_format import (
    ShardFormatError,
    ShardSample,
    decode_flac,
    from_tar_sample,
)
from vrt_finetune.specaugment import draw_masks
from vrt_finetune.targets import TargetOptions
from vrt_finetune.tokenizer import StreamIds

if TYPE_CHECKING:
    from vrt_finetune.augment import Augmenter

log = logging.getLogger(__name__)

UNREADABLE_SHARD = "unreadable_shard"
BAD_SAMPLE = "bad_sample"
UNDECODABLE_AUDIO = "undecodable_audio"
LONGER_THAN_MAX = "longer_than_max_duration"
"""Reasons a sample is left out of training; all but this one mean damaged data."""

AUGMENT_STREAM = 0xA6
"""Tag in a sample's seed that keeps its augmentation draws apart from the batch's delay draw."""


@dataclass
class Batching:
    """How samples are grouped: by duration bucket, up to a budget of padded speech seconds."""

    batch_seconds: float = 120.0
    """Budget per batch: batch size × longest speech in it (the prompt adds (1+L+d) tokens each)."""
    max_batch_size: int = 64
    bucket_edges_s: list[float] = field(default_factory=lambda: [3.0, 5.0, 8.0, 12.0, 18.0])
    """Upper edges of the duration buckets; the last bucket ends at ``max_duration_s``."""
    max_duration_s: float = 30.0
    """Longer samples are skipped (and counted); one longer than ``batch_seconds`` is a batch
    of its own."""

    def __post_init__(self) -> None:
        if self.batch_seconds <= 0 or self.max_batch_size < 1:
            raise ValueError("batching.batch_seconds and max_batch_size must be positive")
        if sorted(self.bucket_edges_s) != list(self.bucket_edges_s):
            raise ValueError("batching.bucket_edges_s must be increasing")


class Item(NamedTuple):
    """One sample before decoding: the flac stays compressed until its batch is kept."""

    key: str
    flac: bytes
    stream: list[int]
    text: str
    duration: float
    language: str | None = None
    """Language code from the shard (scores normalise by it); ``None`` when unknown."""
    words: tuple[str, ...] = ()
    """The sample's words, for rebuilding targets (speed perturbation)."""
    ends: tuple[float, ...] = ()
    """Each word's end in seconds; empty when the shard holds no word times."""
    options: TargetOptions | None = None
    """The target rule's options the shard's stream was built with."""


@dataclass
class ReadCounts:
    """Samples read and samples left out (by reason) since the last :meth:`take`.

    Training never drops a sample silently: every reader and batcher counts what it leaves out,
    each batch carries the counts since the previous one (``batch["sample_counts"]``), and the
    data module adds them up, logs them and stops a run that loses too many.
    """

    read: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def skip(self, reason: str, what: object) -> None:
        self.skipped[reason] += 1
        n = sum(self.skipped.values())
        if n in (1, 10, 100) or n % 1000 == 0:
            log.warning("skipping %s (%s); %d skipped so far in this worker", what, reason, n)

    def take(self) -> dict[str, Any]:
        """The counts so far, as plain data; starts counting afresh."""
        out = {"read": self.read, "skipped": dict(self.skipped)}
        self.read, self.skipped = 0, Counter()
        return out


def item_of(sample: ShardSample, flac: bytes) -> Item:
    """A shard sample (``vrt_finetune.shard_format``) → :class:`Item`."""
    return Item(
        sample.key,
        flac,
        list(sample.targets.stream),
        sample.text,
        sample.duration,
        sample.language,
        tuple(w.word for w in sample.words),
        tuple(w.end for w in sample.words),
        sample.targets.options,
    )


def shuffle_buffer(items: Iterator[Item], size: int, rng: random.Random) -> Iterator[Item]:
    """Approximate shuffle through a buffer of ``size`` items (a pure function of ``rng``)."""
    if size <= 1:
        yield from items
        return
    buf: list[Item] = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        i = rng.randrange(size)
        buf[i], item = item, buf[i]
        yield item
    rng.shuffle(buf)
    yield from buf


def bucket_batches(
    items: Iterator[Item], batching: Batching, flush: bool, counts: ReadCounts | None = None
) -> Iterator[list[Item]]:
    """Group items into batches of similar duration within ``batching.batch_seconds``.

    Each duration bucket fills until one more item would push (count × longest) past the budget
    or the batch size cap; then the bucket is emitted. ``flush`` emits partial buckets at the
    end (validation); an endless training stream never ends.
    """
    edges = [e for e in batching.bucket_edges_s if e < batching.max_duration_s]
    buckets: list[list[Item]] = [[] for _ in range(len(edges) + 1)]
    longest = [0.0] * len(buckets)
    counts = counts if counts is not None else ReadCounts()
    for item in items:
        if item.duration > batching.max_duration_s:
            counts.skip(LONGER_THAN_MAX, f"sample {item.key} ({item.duration:.1f} s)")
            continue
        b = bisect.bisect_left(edges, item.duration)
        new_longest = max(longest[b], item.duration)
        if buckets[b] and (
            (len(buckets[b]) + 1) * new_longest > batching.batch_seconds
            or len(buckets[b]) >= batching.max_batch_size
        ):
            yield buckets[b]
            buckets[b], new_longest = [], item.duration
        buckets[b].append(item)
        longest[b] = new_longest
    if flush:
        yield from (bucket for bucket in buckets if bucket)


def collate(
    items: Sequence[Item],
    delay_ms: int,
    ids: StreamIds,
    counts: ReadCounts | None = None,
    augmenter: Augmenter | None = None,
    rng_key: Sequence[int] = (),
) -> dict[str, Any] | None:
    """Decode, augment and lay out one batch at one delay, right-padded to its longest sample.

    A sample whose FLAC does not decode is left out and counted (``undecodable_audio``);
    ``None`` when none of the batch is left. With an ``augmenter``, sample ``i`` of ``items``
    draws from ``default_rng([*rng_key, AUGMENT_STREAM, i])`` (``rng_key``: seed, rank, worker
    role, batch index), so its augmentation does not depend on which batches ran before.

    Returns:
        ``input_ids`` (B, S) int64 padded with [P]; ``labels`` (B, S) int64 padded with -100;
        ``audio`` (B, S·1280) float32 padded with zeros; ``num_delay_tokens`` and ``delay_ms``
        (ints, one per batch); ``audio_seconds`` (speech in the batch); ``keys``; ``texts``;
        with SpecAugment on, ``spec_time_mask`` (B, S·8) and ``spec_freq_mask`` (B, 128) bool.
    """
    counts = counts if counts is not None else ReadCounts()
    kept, examples, spec_rngs, seconds = [], [], [], 0.0
    for position, it in enumerate(items):
        try:
            speech = decode_flac(it.flac)
        except ShardFormatError as err:
            counts.skip(UNDECODABLE_AUDIO, f"sample {it.key}: {err}")
            continue
        stream = it.stream
        if augmenter is not None:
            wave_rng, spec_rng = np.random.default_rng([*rng_key, AUGMENT_STREAM, position]).spawn(
                2
            )
            speech, stream = augmenter(speech, stream, it.words, it.ends, it.options, wave_rng)
            spec_rngs.append(spec_rng)
        kept.append(it)
        seconds += len(speech) / C.SAMPLE_RATE
        examples.append(
            layout_example(
                stream,
                speech,
                bos_id=ids.bos,
                pad_id=ids.pad,
                n_left_pad_tokens=ids.n_left_pad_tokens,
                delay_ms=delay_ms,
            )
        )
    if not examples:
        return None
    items = kept
    n, s = len(examples), max(len(ex.input_ids) for ex in examples)
    input_ids = np.full((n, s), ids.pad, dtype=np.int64)
    labels = np.full((n, s), IGNORE_INDEX, dtype=np.int64)
    audio = np.zeros((n, s * C.SAMPLES_PER_TOKEN), dtype=np.float32)
    for row, ex in enumerate(examples):
        input_ids[row, : len(ex.input_ids)] = ex.input_ids
        labels[row, : len(ex.labels)] = ex.labels
        audio[row, : len(ex.audio)] = ex.audio
    batch = {
        "input_ids": torch.from_numpy(input_ids),
        "labels": torch.from_numpy(labels),
        "audio": torch.from_numpy(audio),
        "num_delay_tokens": C.check_delay_ms(delay_ms),
        "delay_ms": delay_ms,
        "audio_seconds": seconds,  # after speed perturbation
        "keys": [it.key for it in items],
        "texts": [it.text for it in items],
    }
    if augmenter is not None and augmenter.settings.spec.p > 0:
        masks = [
            draw_masks(
                augmenter.settings.spec,
                labels[row],
                ids.word,
                batch["num_delay_tokens"],
                len(ex.audio) // C.HOP_LENGTH,
                spec_rngs[row],
            )
            for row, ex in enumerate(examples)
        ]
        batch["spec_time_mask"] = torch.from_numpy(np.stack([t for t, _ in masks]))
        batch["spec_freq_mask"] = torch.from_numpy(np.stack([f for _, f in masks]))
    return batch


def read_shard_samples(
    urls: Sequence[str], counts: ReadCounts | None = None
) -> Iterator[tuple[ShardSample, bytes]]:
    """``(sample, FLAC bytes)`` of ``urls`` in order; what cannot be read is counted and skipped.

    A shard that cannot be opened or read to its end counts once as ``unreadable_shard`` (its
    remaining samples cannot be counted one by one); a sample that does not follow the shard
    format counts as ``bad_sample``.
    """
    counts = counts if counts is not None else ReadCounts()
    for url in urls:
        failed: list[Exception] = []

        def on_shard_error(err: Exception, failed: list[Exception] = failed) -> bool:
            failed.append(err)  # webdataset may report one broken shard more than once
            return True  # go on with what can still be read

        for raw in wds.tarfile_samples([{"url": url}], handler=on_shard_error):
            try:
                sample, flac = from_tar_sample(raw)
            except ShardFormatError as err:
                counts.skip(BAD_SAMPLE, f"sample {raw.get('__key__')}: {err}")
                continue
            counts.read += 1
            yield sample, flac
        if failed:
            counts.skip(UNREADABLE_SHARD, f"the rest of {url} ({failed[0]})")


def read_items(urls: Sequence[str], counts: ReadCounts | None = None) -> Iterator[Item]:
    """Training items of ``urls`` in order (see :func:`read_shard_samples` for what is skipped)."""
    for sample, flac in read_shard_samples(urls, counts):
        yield item_of(sample, flac)
