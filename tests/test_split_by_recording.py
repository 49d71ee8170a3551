"""Windows of one recording with no speaker never straddle splits: a manifest's ``start``/``end``
rows, a Hugging Face row's segment list and a lhotse cut's supervisions are grouped by the
recording they are cut from (``SourceItem.recording``), as speakers are when known;
``shards.split_by`` chooses."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.column_presets import resolve_columns
from data_prep.config import SourceConfig
from data_prep.hf_source import row_items
from data_prep.lhotse_source import read_lhotse
from data_prep.sources import SourceItem, read_manifest
from data_prep.unit_processor import split_of

RECORDINGS, WINDOWS = 12, 5
FRACTIONS = (0.3, 0.3)
"""valid, test: large, so that windows split by key would land in every split."""


def _splits_by_recording(items: list[SourceItem], split_by: str = "speaker") -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for item in items:
        assert item.error is None, item.error
        assert item.recording is not None
        found[item.recording].add(split_of(item, *FRACTIONS, split_by))
    return found


def _check(items: list[SourceItem]) -> None:
    assert len(items) == RECORDINGS * WINDOWS
    by_recording = _splits_by_recording(items)
    assert len(by_recording) == RECORDINGS
    assert all(len(splits) == 1 for splits in by_recording.values()), by_recording
    # the recordings themselves still spread over the splits
    assert {s for splits in by_recording.values() for s in splits} == {"train", "valid", "test"}
    # what split by key would have done: some recording heard in two splits
    assert any(
        len({split_of(SourceItem(i.key, None, "x", "en", "t"), *FRACTIONS) for i in group}) > 1
        for group in _group(items).values()
    )


def _group(items: list[SourceItem]) -> dict[str, list[SourceItem]]:
    groups: dict[str, list[SourceItem]] = defaultdict(list)
    for item in items:
        groups[str(item.recording)].append(item)
    return groups


def _wavs(d: Path) -> list[Path]:
    paths = []
    for r in range(RECORDINGS):
        paths.append(d / f"lecture{r}.wav")
        sf.write(paths[-1], np.zeros(16000 * WINDOWS, np.float32), 16000, subtype="PCM_16")
    return paths


def test_manifest_windows_of_one_file_share_a_split(tmp_path) -> None:
    _wavs(tmp_path)
    rows = [
        {"audio": f"lecture{r}.wav", "text": "a window", "start": w, "end": w + 1}
        for r in range(RECORDINGS)
        for w in range(WINDOWS)
    ]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    items = list(read_manifest(tmp_path / "m.jsonl"))
    assert items[0].recording == "lecture0.wav"  # as written: equal on every machine
    _check(items)


def test_hf_segments_of_one_row_share_a_split(tmp_path) -> None:
    source = SourceConfig(kind="hf", path="lectures", preset="long_audio")
    columns = resolve_columns("long_audio")
    items = []
    for r, wav in enumerate(_wavs(tmp_path)):
        segments = [{"start": w, "end": w + 1, "text": "a window"} for w in range(WINDOWS)]
        row = {"audio": {"bytes": None, "path": str(wav)}, "text": "", "segments": segments}
        items += row_items(row, r, columns, source)
    _check(items)


def test_lhotse_supervisions_of_one_recording_share_a_split(tmp_path) -> None:
    from lhotse import CutSet, Recording, SupervisionSegment
    from lhotse.utils import fastcopy

    cuts = []
    for wav in _wavs(tmp_path):
        rec = Recording.from_file(wav)
        sups = [
            SupervisionSegment(f"{rec.id}-{w}", rec.id, start=w, duration=1.0, text="a window")
            for w in range(WINDOWS)
        ]
        cuts.append(fastcopy(rec.to_cut(), supervisions=sups))
    CutSet.from_cuts(cuts).to_file(tmp_path / "cuts.jsonl.gz")
    items = list(read_lhotse(tmp_path / "cuts.jsonl.gz"))
    assert items[0].recording == "lecture0"
    _check(items)


def test_split_by_recording_ignores_speakers_and_key_ignores_recordings() -> None:
    def item(n: int, speaker: str | None) -> SourceItem:
        return SourceItem(f"k{n}", None, "x", "en", "t", speaker=speaker, recording=f"r{n % 20}")

    items = [item(n, "alice") for n in range(200)]
    assert len({split_of(i, *FRACTIONS) for i in items}) == 1  # one speaker: one split
    by_recording = _splits_by_recording(items, "recording")
    assert all(len(s) == 1 for s in by_recording.values())
    assert {s for splits in by_recording.values() for s in splits} == {"train", "valid", "test"}
    by_key = _splits_by_recording(items, "key")
    assert any(len(s) > 1 for s in by_key.values())  # windows of a recording apart
