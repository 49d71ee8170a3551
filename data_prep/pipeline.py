"""``vrt-prep``'s engine: items → work units → aligned, filtered, targeted samples → shards.

A work unit is ``items_per_unit`` consecutive input items; processing one is a pure function of
them (:class:`~data_prep.unit_processor.UnitProcessor`, whose module lists the stages) and ends
with its completion marker (:mod:`data_prep.unit_result`). This module plans the units and runs
the unfinished ones.

One machine runs units in a process pool; many machines each take the units ``u`` with
``u % world_size == rank`` and a final ``merge`` writes ``index.json``, the summary and the card.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence

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
    (finished units from an earlier run are yielded from their markers first)."""
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    clean_temporaries(out)
    units = plan_units(items, config.shards.items_per_unit)
    mine = [(u, unit) for u, unit in enumerate(units) if u % world_size == rank]
    todo = []
    for u, unit in mine:
        marker = unit_marker(out, u)
        if marker.exists():
            yield UnitResult.from_json(json.loads(marker.read_text()))
        else:
            todo.append((u, unit))
    if not todo:
        return
    if config.workers <= 1:
        proc = UnitProcessor(config)
        yield from (proc.run_unit(u, unit) for u, unit in todo)
        return
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # torch + fork is unsafe
    with ctx.Pool(config.workers, _init_worker, (config,)) as pool:
        yield from pool.imap(_run_in_worker, todo)
