"""The result of one ``vrt-prep`` work unit and its completion marker ``_units/unit-NNNNN.json``.

Separate from the processing (:mod:`data_prep.unit_processor`, which writes the marker) and the
orchestration (:mod:`data_prep.pipeline`, which skips units that have one) because the report and
the dataset card read markers too, without loading a tokenizer or an aligner.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from data_prep.shards import ShardInfo, shard_info_from_json, shard_info_to_json
from data_prep.sources import SourceItem
from vrt_finetune.shard_format import UNITS_DIR, unit_marker

__all__ = ["UNITS_DIR", "UnitResult", "unit_marker"]

MAX_REJECT_EXAMPLES = 20


@dataclass
class UnitResult:
    """What one unit produced; saved as its completion marker."""

    unit: int
    n_items: int
    input_seconds: float = 0.0
    shards: list[ShardInfo] = field(default_factory=list)
    rejects: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    """Per kept sample: split, seconds, words, text tokens, flagged words, language, speaker,
    text (what the card needs, without reopening the shards)."""

    def reject(self, item: SourceItem, reason: str, message: str) -> None:
        self.rejects[reason] += 1
        if sum(e["reason"] == reason for e in self.examples) < MAX_REJECT_EXAMPLES:
            self.examples.append(
                {"key": item.key, "source": item.source, "reason": reason, "message": message}
            )

    def to_json(self) -> dict:
        return {
            "unit": self.unit,
            "n_items": self.n_items,
            "input_seconds": self.input_seconds,
            "shards": [shard_info_to_json(s) for s in self.shards],
            "rejects": dict(sorted(self.rejects.items())),
            "examples": self.examples,
            "samples": self.samples,
        }

    @classmethod
    def from_json(cls, d: dict) -> UnitResult:
        return cls(
            d["unit"],
            d["n_items"],
            d["input_seconds"],
            [shard_info_from_json(s) for s in d["shards"]],
            Counter(d["rejects"]),
            d["examples"],
            d["samples"],
        )
