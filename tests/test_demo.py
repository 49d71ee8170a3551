"""The demo's helpers that are not covered by the learning-proof test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vrt_recipes.demo import replay_shards

from data_prep.espeak_worker import espeak_available


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


def test_fertility_is_read_from_the_dataset_card(tmp_path: Path) -> None:
    from vrt_recipes.demo_language import fertility

    (tmp_path / "README.md").write_text(
        "## Tokenizer fertility\n\n4.15 text tokens per word (HIGH: above 2.5, see the note).\n"
    )
    assert fertility(tmp_path) == (4.15, "HIGH: above 2.5, see the note")
    (tmp_path / "README.md").write_text("# a card without the section\n")
    with pytest.raises(ValueError, match="fertility"):
        fertility(tmp_path)


def test_language_table_has_a_row_per_model_and_delay() -> None:
    from vrt_recipes.demo_language import table

    def result(wer: float, latency: float) -> dict:
        return {"wer": wer, "latency": {"median": latency}}

    models = {
        name: {
            "domain": {"480": result(es, 0.52)},
            "general": {"480": result(en, 0.5)},
        }
        for name, es, en in (("base", 1.02, 0.04), ("adapted", 0.12, 0.06))
    }
    models["base"]["domain"]["480"]["latency"]["median"] = None  # no word emitted
    voice = {"adapted": {"domain": {"480": result(0.2, 0.5)}}}
    rows = table(models, voice, [480]).splitlines()
    assert rows[2] == "| base | 480 ms | 102.0% | - | 4.0% | - |"
    assert rows[3] == "| adapted | 480 ms | 12.0% | 20.0% | 6.0% | 520 ms |"


@pytest.mark.skipif(not espeak_available(), reason="libespeak-ng not installed")
def test_demo_recordings_are_files_vrt_prep_reads(tmp_path: Path) -> None:
    from vrt_recipes.demo_language import write_recordings

    from data_prep.audio_io import load_audio

    files = write_recordings(tmp_path, n=2)
    assert [f.suffix for f in files] == [".wav", ".mp3"]
    for f in files:
        audio = load_audio(f)
        assert audio.ndim == 1 and len(audio) > 16_000 * 0.5, f
        assert f.with_suffix(".txt").read_text().strip()
