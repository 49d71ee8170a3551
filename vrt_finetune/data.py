"""Training and validation batches from WebDataset shards (``KEY.flac`` + ``KEY.json``).

Flow of one DataLoader worker during training (an endless stream; runs are sized by
``trainer.max_steps``)::

    shard list ─▶ pass p: shuffle shard order (same seed on every rank) ─▶ split_by_node
      ─▶ split by worker (every n-th shard) ─▶ tar samples (flac bytes + json) ─▶ shuffle buffer
      ─▶ duration buckets ─▶ batch plan ─▶ delay draw ─▶ decode flac, layout_example per sample,
      right-pad ─▶ batch dict
    on the device (``on_after_batch_transfer``): waveform (B, S·1280) ─▶ LogMel ─▶ (B, 128, S·8)

Right padding is safe because the model is causal end to end (causal conv stem, causal
attention): positions past a sample's end never reach its earlier positions, so no attention
mask is needed and padded positions are simply ignored by the loss.

Resuming: flac decoding happens after batching, so a resumed run replays the cheap part (tar
reading, shuffling, bucketing) and skips the batches already trained on, and takes exactly the
batches an uninterrupted run would have taken (same seed, ranks and workers).

This module holds the shard side (shard lists, delay draws, splitting by rank and worker, the
data module); the per-sample steps (parsing, shuffle buffer, buckets, collate) are in
``vrt_finetune.batches``.
"""

from __future__ import annotations

import glob
import itertools
import logging
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset

from vrt_finetune import constants as C
from vrt_finetune.augment import Augment, Augmenter
from vrt_finetune.batches import (
    LONGER_THAN_MAX,
    Batching,
    Item,
    ReadCounts,
    bucket_batches,
    collate,
    read_items,
    shuffle_buffer,
)
from vrt_finetune.features import LogMel
from vrt_finetune.shard_format import decode_flac
from vrt_finetune.shard_verify import verify_shard_list
from vrt_finetune.specaugment import apply_masks
from vrt_finetune.tokenizer import StreamIds, StreamingTokenizer, open_tokenizer

log = logging.getLogger(__name__)

DEFAULT_VAL_DELAYS_MS = (3 * C.TOKEN_MS, C.DEFAULT_DELAY_MS, 12 * C.TOKEN_MS, C.MAX_DELAY_MS)
"""240, 480, 960 and 2400 ms: the delays of the paper's results table."""


class ShardListError(ValueError):
    """A shard list names nothing that exists."""


class DataLossError(ValueError):
    """Training lost more samples to damaged data than ``data.max_skipped_fraction`` allows."""


def expand_shards(spec: str | Sequence[str]) -> list[str]:
    """Shard list → shard URLs: paths, globs, ``{a..b}`` braces, directories, or URLs.

    Anything webdataset opens is passed through as is (``pipe:``, ``http(s)://``, ``s3://``,
    ``gs://``, ``file:`` …), after brace expansion; local names must match at least one file.
    ``::`` separates several lists inside one string (webdataset's convention).

    Raises:
        ShardListError: a local pattern matches no file, or the whole list is empty.
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    urls: list[str] = []
    for item in items:
        for url in wds.shardlists.expand_urls(str(item)):
            if url.startswith("pipe:") or "://" in url or url.startswith("file:"):
                urls.append(url)
                continue
            path = Path(url).expanduser()
            if path.is_dir():
                found = sorted(str(p) for p in path.rglob("*.tar"))
            elif glob.has_magic(url):
                found = sorted(glob.glob(str(path), recursive=True))
            else:
                found = [str(path)] if path.is_file() else []
            if not found:
                raise ShardListError(
                    f"shard list entry {url!r} matches no file (searched from {Path.cwd()}); "
                    "check the path, or run vrt-prep to write the shards first"
                )
            urls.extend(found)
    if not urls:
        raise ShardListError(f"shard list {spec!r} is empty")
    return urls


@dataclass
class DelayDistribution:
    """Where each training batch's delay comes from (one delay per batch: one ``t`` per forward).

    Default: uniform over every delay from 80 to 2400 ms in 80 ms steps, as in pre-training.
    """

    choices_ms: list[int] | None = None
    """Delays to draw from; ``None``: all of 80-2400 ms in 80 ms steps."""
    weights: list[float] | None = None
    """Relative weight of each choice; ``None``: uniform."""

    def __post_init__(self) -> None:
        choices = list(self.choices_ms or C.DELAY_CHOICES_MS)
        for ms in choices:
            C.check_delay_ms(ms)
        if self.weights is not None and (
            len(self.weights) != len(choices) or min(self.weights) < 0 or sum(self.weights) <= 0
        ):
            raise ValueError(
                f"delays.weights needs {len(choices)} non-negative weights (one per choice) "
                "with a positive sum"
            )
        self._choices = np.array(choices)
        w = np.ones(len(choices)) if self.weights is None else np.array(self.weights, float)
        self._p = w / w.sum()

    def sample(self, rng: np.random.Generator) -> int:
        """One delay in ms."""
        return int(rng.choice(self._choices, p=self._p))


class ShardStream(IterableDataset):
    """Batches from shards for one rank; each DataLoader worker makes its own share.

    Args:
        urls: expanded shard list (all of it; this class splits it).
        ids: tokenizer ids for the layout.
        batching: bucketing rules.
        train: endless shuffled stream split by node then worker (shard level), with a delay
            drawn per batch; else one ordered pass split by sample, at ``fixed_delay_ms``.
        rank, world_size: this process's place in the job, from the trainer.
        skip_batches: batches this rank already trained on (resume).
        augmenter: per-sample augmentation of training batches (``None``: none).
    """

    def __init__(
        self,
        urls: list[str],
        ids: StreamIds,
        batching: Batching,
        *,
        train: bool,
        delays: DelayDistribution | None = None,
        fixed_delay_ms: int | None = None,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        skip_batches: int = 0,
        augmenter: Augmenter | None = None,
    ) -> None:
        super().__init__()
        if not train and fixed_delay_ms is None:
            raise ValueError("validation streams need a fixed delay")
        self.urls, self.ids, self.batching, self.train = urls, ids, batching, train
        self.delays = delays or DelayDistribution()
        self.fixed_delay_ms = fixed_delay_ms
        self.shuffle_size, self.seed = shuffle_buffer, seed
        self.rank, self.world_size, self.skip_batches = rank, world_size, skip_batches
        self.augmenter = augmenter

    def _train_items(self, role: int, n_workers: int, counts: ReadCounts) -> Iterator[Item]:
        for epoch in itertools.count():
            urls = list(self.urls)
            random.Random(self.seed + epoch).shuffle(urls)  # same order on every rank
            # webdataset's split_by_worker takes the DataLoader worker id; we split by the
            # worker's role instead (see __iter__), with the same rule: every n-th shard.
            mine = list(itertools.islice(wds.split_by_node(urls), role, None, n_workers))
            if not mine:
                raise RuntimeError(
                    f"{len(self.urls)} training shards cannot feed {self.world_size} ranks × "
                    f"{n_workers} DataLoader workers (rank {self.rank} got none for worker "
                    f"{role}): write more, smaller shards or lower data.num_workers"
                )
            n = 0
            for n, item in enumerate(read_items(mine, counts), 1):  # noqa: B007 - counts the pass
                yield item
            if n == 0:
                raise RuntimeError(f"shards {mine[:3]}… hold no readable samples")

    def _val_items(self, worker: int, n_workers: int, counts: ReadCounts) -> Iterator[Item]:
        # Every rank reads every shard and keeps 1 sample in (ranks × workers): small validation
        # sets with fewer shards than ranks still split evenly and never overlap.
        share, me = self.world_size * n_workers, self.rank * n_workers + worker
        for i, item in enumerate(read_items(self.urls, counts)):
            if i % share == me:
                yield item

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        counts = ReadCounts()
        if not self.train:
            assert self.fixed_delay_ms is not None
            items = self._val_items(worker, n_workers, counts)
            for plan in bucket_batches(items, self.batching, flush=True, counts=counts):
                batch = collate(plan, self.fixed_delay_ms, self.ids, counts)
                if batch is not None:
                    yield {**batch, "sample_counts": counts.take()}
            return
        seen = wds.utils.pytorch_worker_info()[:2]
        if seen != (self.rank, self.world_size):
            raise RuntimeError(
                f"webdataset sees rank {seen[0]} of {seen[1]} but the trainer runs rank "
                f"{self.rank} of {self.world_size}: set RANK and WORLD_SIZE for the workers "
                "(or use the default fork start method)"
            )
        # The DataLoader takes batches from its workers round-robin, starting at worker 0 on
        # every (re)start. After `skip` batches the next one is due from the worker that was
        # `skip % n` then, so each worker takes over that role: its shards, seeds and place.
        role = (worker + self.skip_batches) % n_workers
        skip = len(range(role, self.skip_batches, n_workers))  # batches this role already made
        rng = random.Random(self.seed * 1_000_003 + self.rank * 1009 + role)
        items = shuffle_buffer(self._train_items(role, n_workers, counts), self.shuffle_size, rng)
        plans = bucket_batches(items, self.batching, flush=False, counts=counts)
        for index, plan in enumerate(plans):
            if index < skip:
                counts.take()  # counted before the checkpoint
                continue  # replayed without decoding a sample
            delay = self.fixed_delay_ms
            if delay is None:
                delay = self.delays.sample(
                    np.random.default_rng([self.seed, self.rank, role, index])
                )
            key = (
                self.seed,
                self.rank,
                role,
                index,
            )  # the delay draw's, and resumable the same way
            batch = collate(plan, delay, self.ids, counts, self.augmenter, key)
            if batch is not None:  # else its counts go with the next batch
                yield {**batch, "sample_counts": counts.take()}


class VrtDataModule(L.LightningDataModule):
    """Shards → batches for ``VrtLitModule`` (log-mel computed on the device).

    Args:
        train_shards: training shard list (see :func:`expand_shards`).
        val_shards: validation shard list; ``None``: no validation.
        tokenizer: ``tekken.json`` / model directory / hub id (the CLI links it to the model's).
        batching: training batch grouping.
        val_batching: validation batch grouping (default: same as training).
        delays: per-batch delay distribution for training.
        val_delays_ms: fixed delays of the teacher-forced validation loss (one loader each).
        shuffle_buffer: samples held for shuffling per worker (memory: compressed flac).
        num_workers: DataLoader workers per rank; keep it (and the number of ranks) unchanged
            across a resume for an exact replay.
        seed: shard order, shuffling and delay draws.
        verify: check every local shard against the ``index.json`` that lists it (size,
            sha256, samples) before training; passes are cached by path, size and mtime.
        max_skipped_fraction: stop when more than this share of the training samples read could
            not be used (unreadable shard data, bad samples, undecodable audio); counted over at
            least 1000 samples, so one bad sample at the very start does not stop a run.
            Samples longer than ``batching.max_duration_s`` are counted but not held against it.
        augment: training-time augmentation (``vrt_finetune.augment``); all off by default.
            Buckets use the stored durations, so speed factors below 1 can exceed
            ``batch_seconds`` by up to 1/factor.
    """

    def __init__(
        self,
        train_shards: str | list[str] | None = None,
        val_shards: str | list[str] | None = None,
        tokenizer: str | None = None,
        batching: Batching | None = None,
        val_batching: Batching | None = None,
        delays: DelayDistribution | None = None,
        val_delays_ms: list[int] | None = None,
        shuffle_buffer: int = 1000,
        num_workers: int = 2,
        seed: int = 0,
        verify: bool = True,
        max_skipped_fraction: float = 0.001,
        augment: Augment | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= max_skipped_fraction <= 1:
            raise ValueError("data.max_skipped_fraction must be between 0 and 1")
        self.verify, self.max_skipped_fraction = verify, max_skipped_fraction
        self.sample_counts: dict[str, ReadCounts] = {"train": ReadCounts(), "val": ReadCounts()}
        """Samples read and left out (by reason) so far, for training and validation."""
        self.train_shards, self.val_shards, self.tokenizer_source = (
            train_shards,
            val_shards,
            tokenizer,
        )
        self.batching = batching or Batching()
        self.val_batching = val_batching or self.batching
        self.delays = delays or DelayDistribution()
        self.val_delays_ms = list(val_delays_ms or DEFAULT_VAL_DELAYS_MS)
        for ms in self.val_delays_ms:
            C.check_delay_ms(ms)
        self.shuffle_buffer, self.num_workers, self.seed = shuffle_buffer, num_workers, seed
        self.batches_consumed = 0
        """Training batches handed to the model so far (saved in checkpoints for resuming)."""
        self._restored: dict[str, int] = {}
        self._log_mel = LogMel()
        self._tokenizer: StreamingTokenizer | None = None
        self.augment = augment or Augment()
        self.augmenter: Augmenter | None = None

    @property
    def ids(self) -> StreamIds:
        if self._tokenizer is None:
            if self.tokenizer_source is None:
                raise ValueError("data.tokenizer is not set (tekken.json or model directory)")
            self._tokenizer = open_tokenizer(self.tokenizer_source)
        return self._tokenizer.ids

    def _place(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer else (0, 1)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.train_shards is None:
            raise ShardListError("data.train_shards is not set")
        self.train_urls = expand_shards(self.train_shards) if self.train_shards else []
        self.val_urls = expand_shards(self.val_shards) if self.val_shards else []
        ids = self.ids  # fail at setup, not in a DataLoader worker
        if self.augment.enabled and self.augmenter is None:
            assert self._tokenizer is not None
            # reads the noise and RIR directories' headers: a bad one fails here
            self.augmenter = Augmenter(self.augment, self._tokenizer.encode, ids)
        if self.verify and stage in ("fit", "validate"):
            verify_shard_list([*self.train_urls, *self.val_urls])

    def _loader(self, dataset: ShardStream) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=None,  # the dataset batches
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            prefetch_factor=2 if self.num_workers else None,
        )

    def train_dataloader(self) -> DataLoader:
        rank, world = self._place()
        if self._restored and (
            self._restored.get("world_size") != world
            or self._restored.get("num_workers") != self.num_workers
        ):
            log.warning(
                "resuming with %d ranks × %d workers (checkpoint: %s): the data order differs "
                "from an uninterrupted run",
                world,
                self.num_workers,
                self._restored,
            )
        dataset = ShardStream(
            self.train_urls,
            self.ids,
            self.batching,
            train=True,
            delays=self.delays,
            shuffle_buffer=self.shuffle_buffer,
            seed=self.seed,
            rank=rank,
            world_size=world,
            skip_batches=self.batches_consumed,
            augmenter=self.augmenter,
        )
        return self._loader(dataset)

    def val_dataloader(self) -> list[DataLoader]:
        rank, world = self._place()
        return [
            self._loader(
                ShardStream(
                    self.val_urls,
                    self.ids,
                    self.val_batching,
                    train=False,
                    fixed_delay_ms=ms,
                    rank=rank,
                    world_size=world,
                )
            )
            for ms in (self.val_delays_ms if self.val_urls else [])
        ]

    def wer_samples(self, n: int) -> list[tuple[str, np.ndarray, str, str | None]]:
        """The first ``n`` validation samples as ``(key, audio (T,) float32, text, language)``."""
        return [
            (it.key, decode_flac(it.flac), it.text, it.language)
            for it in itertools.islice(read_items(self.val_urls), n)
        ]

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict:
        """Waveforms → log-mel on the batch's device; counts training batches for resuming."""
        if "audio" in batch:
            audio = batch.pop("audio")
            if self._log_mel.window.device != audio.device:
                self._log_mel = self._log_mel.to(audio.device)
            batch["input_features"] = self._log_mel(audio)  # (B, 128, S·8) float32
        if "spec_time_mask" in batch:
            batch["input_features"] = apply_masks(
                batch["input_features"], batch.pop("spec_time_mask"), batch.pop("spec_freq_mask")
            )
        training = self.trainer is not None and self.trainer.training
        if "sample_counts" in batch:
            self._count(batch.pop("sample_counts"), "train" if training else "val")
        if training:
            self.batches_consumed += 1
        return batch

    def _count(self, delta: dict[str, Any], role: str) -> None:
        """Add a batch's sample counts; log them; stop a run that loses too much data."""
        total = self.sample_counts[role]
        total.read += delta["read"]
        total.skipped.update(delta["skipped"])
        if not delta["skipped"] or role != "train":
            return
        trainer = self.trainer
        if trainer is not None:
            metrics = {f"data/skipped/{r}": float(n) for r, n in total.skipped.items()}
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
        damaged = sum(n for r, n in total.skipped.items() if r != LONGER_THAN_MAX)
        seen = total.read + damaged
        if damaged > self.max_skipped_fraction * max(seen, 1000):
            raise DataLossError(
                f"{damaged} of {seen} training samples could not be used "
                f"({dict(total.skipped)}), more than data.max_skipped_fraction="
                f"{self.max_skipped_fraction}: check the shards with `vrt-prep verify DIR`, "
                "re-create the damaged ones, or raise the threshold to train on the rest"
            )

    def summary(self) -> str:
        """One line per role: samples read and left out, by reason."""
        return "; ".join(
            f"{role}: {c.read} samples read, {sum(c.skipped.values())} left out"
            + (f" {dict(c.skipped)}" if c.skipped else "")
            for role, c in self.sample_counts.items()
        )

    def teardown(self, stage: str) -> None:
        if stage == "fit":
            log.info("data: %s", self.summary())

    def state_dict(self) -> dict[str, int]:
        _, world = self._place()
        train = self.sample_counts["train"]
        return {
            "batches_consumed": self.batches_consumed,
            "world_size": world,
            "num_workers": self.num_workers,
            "samples_read": train.read,
            "samples_skipped": dict(train.skipped),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.batches_consumed = int(state_dict["batches_consumed"])
        train = self.sample_counts["train"]
        train.read = int(state_dict.get("samples_read", 0))
        train.skipped = Counter(state_dict.get("samples_skipped", {}))
        self._restored = {k: v for k, v in state_dict.items() if isinstance(v, int)}
