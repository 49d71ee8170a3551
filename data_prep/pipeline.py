"""``vrt-prep``'s engine: items → work units → aligned, filtered, targeted samples → shards.

A work unit is ``items_per_unit`` consecutive input items; processing one is a pure function of
them (:class:`~data_prep.unit_processor.UnitProcessor`, whose module lists the stages) and ends
with its completion marker (:mod:`data_prep.unit_result`). This module plans the units and runs
the unfinished ones.

One machine runs units in a process pool; many machines each take the units ``u`` with
``u % world_size == rank`` and a final ``merge`` writes ``index.json``, the summary and the card.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing.pool import AsyncResult

from data_prep.config import PrepConfig
from data_prep.shards import clean_temporaries
from data_prep.sources import SourceItem
from data_prep.unit_processor import UnitProcessor
from data_prep.unit_result import UnitResult, unit_marker

log = logging.getLogger(__name__)


def rank_and_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """Flags first, then torchrun (``RANK``/``WORLD_SIZE``), then SLURM, else ``(0, 1)``."""
    env = os.environ
    if rank is None:
        rank = int(env.get("RANK", env.get("SLURM_PROCID", 0)))
    if world_size is None:
        world_size = int(env.get("WORLD_SIZE", env.get("SLURM_NTASKS", 1)))
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world size {world_size}")
    return rank, world_size


def plan_units(items: Sequence[SourceItem], items_per_unit: int) -> list[list[SourceItem]]:
    return [list(items[i : i + items_per_unit]) for i in range(0, len(items), items_per_unit)]


_WORKER: UnitProcessor | None = None


def _init_worker(config: PrepConfig) -> None:
    global _WORKER
    import torch

    torch.set_num_threads(1)
    _WORKER = UnitProcessor(config)


def _run_in_worker(args: tuple[int, list[SourceItem]]) -> UnitResult:
    assert _WORKER is not None
    return _WORKER.run_unit(*args)


def run_units(
    config: PrepConfig,
    items: Sequence[SourceItem],
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
) -> Iterator[UnitResult]:
    """Run every unfinished unit of this rank; yields each unit's result as it finishes
    (a finished unit of an earlier run: from its marker)."""
    units = plan_units(items, config.shards.items_per_unit)
    mine = (
        (u, functools.partial(list, unit)) for u, unit in enumerate(units) if u % world_size == rank
    )
    yield from run_unit_stream(config, mine)


def run_unit_stream(
    config: PrepConfig, units: Iterable[tuple[int, Callable[[], list[SourceItem]]]]
) -> Iterator[UnitResult]:
    """Run this rank's units as they come (a list, or a stream read while the units run).

    Args:
        config: The run's recipe.
        units: ``(unit number, function making its items)``; the function is called only for a
            unit without a marker, so a finished unit's audio is never fetched or decoded.

    Yields:
        Each unit's result (a finished one's from its marker at once, the others' in order).
    """
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    clean_temporaries(out)
    proc: UnitProcessor | None = None
    with contextlib.ExitStack() as stack:
        pool = None
        # units handed to the pool and not yet collected: at most 2 per worker, so a stream is
        # read only that far ahead (NOTE: Pool.imap would consume the whole stream at once)
        pending: deque[AsyncResult[UnitResult]] = deque()
        for u, make in units:
            marker = unit_marker(out, u)
            if marker.exists():
                yield UnitResult.from_json(json.loads(marker.read_text()))
                continue
            if config.workers <= 1:
                proc = proc or UnitProcessor(config)
                yield proc.run_unit(u, make())
                continue
            if pool is None:
                import multiprocessing as mp

                ctx = mp.get_context("spawn")  # torch + fork is unsafe
                pool = stack.enter_context(ctx.Pool(config.workers, _init_worker, (config,)))
            pending.append(pool.apply_async(_run_in_worker, ((u, make()),)))
            while len(pending) >= 2 * config.workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
