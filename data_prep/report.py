"""Progress while ``vrt-prep`` runs, and what it leaves behind: index, summary and card."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from tqdm import tqdm

from data_prep.shards import write_index
from data_prep.unit_result import UNITS_DIR, UnitResult
from vrt_finetune.io_utils import atomic_write_text
from vrt_finetune.shard_format import SPLITS, SUMMARY_FILE


def with_progress(
    results: Iterable[UnitResult], total_items: int | None, enabled: bool = True
) -> Iterator[UnitResult]:
    """A bar of items with audio hours, hours per second and time left (tqdm's ETA)."""
    t0 = time.perf_counter()
    hours = 0.0
    with tqdm(
        total=total_items, unit="item", disable=not enabled, file=sys.stderr, dynamic_ncols=True
    ) as bar:
        for r in results:
            hours += r.input_seconds / 3600
            rate = hours / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix_str(f"{hours:.3f} h audio, {rate * 3600:.0f}× real time")
            bar.update(r.n_items)
            yield r


def load_unit_results(out_dir: Path) -> list[UnitResult]:
    return [
        UnitResult.from_json(json.loads(p.read_text()))
        for p in sorted((Path(out_dir) / UNITS_DIR).glob("unit-*.json"))
    ]


def summarize(results: list[UnitResult]) -> dict:
    """Kept, rejected by reason, hours per split."""
    rejects: Counter = Counter()
    for r in results:
        rejects.update(r.rejects)
    samples = [s for r in results for s in r.samples]
    return {
        "items": sum(r.n_items for r in results),
        "input_hours": round(sum(r.input_seconds for r in results) / 3600, 6),
        "kept_samples": len(samples),
        "rejected": sum(rejects.values()),
        "rejects_by_reason": dict(sorted(rejects.items())),
        "reject_examples": [e for r in results for e in r.examples],
        "hours_by_split": {
            sp: round(sum(s["seconds"] for s in samples if s["split"] == sp) / 3600, 6)
            for sp in SPLITS
        },
        "samples_by_split": {sp: sum(s["split"] == sp for s in samples) for sp in SPLITS},
    }


def merge(out_dir: Path, extra: dict | None = None) -> tuple[dict, dict]:
    """Write ``index.json`` and ``summary.json`` from every unit marker (all ranks)."""
    results = load_unit_results(out_dir)
    shards = [s for r in results for s in r.shards]
    index = write_index(out_dir, shards, extra)
    summary = summarize(results)
    atomic_write_text(Path(out_dir) / SUMMARY_FILE, json.dumps(summary, indent=1))
    return index, summary


def format_summary(summary: dict) -> str:
    lines = [
        f"items read: {summary['items']} ({summary['input_hours']:.3f} h of audio)",
        f"kept: {summary['kept_samples']} samples; rejected: {summary['rejected']}",
    ]
    for reason, n in summary["rejects_by_reason"].items():
        lines.append(f"  rejected {reason}: {n}")
    for sp in SPLITS:
        lines.append(
            f"  {sp}: {summary['samples_by_split'][sp]} samples, "
            f"{summary['hours_by_split'][sp]:.4f} h"
        )
    return "\n".join(lines)
