"""The demo's helpers that are not covered by the learning-proof test."""

from __future__ import annotations

import json
from pathlib import Path

from vrt_recipes.demo import replay_shards


def test_replay_shards_picks_enough_training_shards_in_name_order(tmp_path: Path) -> None:
    shards = [
        {"name": "train/train-u00001-000.tar", "split": "train", "n_samples": 40},
        {"name": "test/test-u00000-000.tar", "split": "test", "n_samples": 90},
        {"name": "train/train-u00000-000.tar", "split": "train", "n_samples": 40},
        {"name": "train/train-u00002-000.tar", "split": "train", "n_samples": 40},
    ]
    (tmp_path / "index.json").write_text(json.dumps({"shards": shards}))
    picked = replay_shards(tmp_path, "train", 50)
    assert picked == [
        str(tmp_path / "train/train-u00000-000.tar"),
        str(tmp_path / "train/train-u00001-000.tar"),
    ]
    assert replay_shards(tmp_path, "train", 40) == [str(tmp_path / "train/train-u00000-000.tar")]
    assert len(replay_shards(tmp_path, "train", 10_000)) == 3  # all there is
