"""Languages named in words ("English", as lhotse recipes write them) become ISO codes in every
source, so the aligner's default model and the WER normaliser see the language they key on."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import soundfile as sf

from data_prep.column_presets import resolve_columns
from data_prep.config import SourceConfig
from data_prep.hf_source import row_items
from data_prep.language_codes import language_code
from data_prep.lhotse_source import read_lhotse
from data_prep.sources import read_manifest
from vrt_finetune.wer_normalizer import is_english, splits_characters

NAMES = ["English", "Mandarin", "swahili", "SPANISH", None, "sw", "pt-BR", "yue", "Klingon"]
CODES = ["en", "zh", "sw", "es", "fr", "sw", "pt-BR", "yue", "Klingon"]
"""Names map, codes and unknown names stay, an empty value is the default (``fr``)."""


@pytest.mark.parametrize(("name", "code"), zip(NAMES, CODES, strict=True))
def test_names_map_to_codes(name: str | None, code: str) -> None:
    assert language_code(name, "fr") == code
    assert language_code(name, "French") == ("fr" if name is None else code)


def test_every_source_reads_language_names_as_codes(tmp_path) -> None:
    from lhotse import CutSet, Recording, SupervisionSegment
    from lhotse.utils import fastcopy

    sf.write(tmp_path / "a.wav", np.zeros(16000 * len(NAMES), np.float32), 16000)
    rows = [{"audio": "a.wav", "text": "x", "language": n} for n in NAMES]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rec = Recording.from_file(tmp_path / "a.wav")
    sups = [
        SupervisionSegment(f"s{i}", rec.id, i, 1.0, text="x", language=n)
        for i, n in enumerate(NAMES)
    ]
    CutSet.from_cuts([fastcopy(rec.to_cut(), supervisions=sups)]).to_file(tmp_path / "c.jsonl")
    source = SourceConfig(kind="hf", path="x", language="French", preset="common_voice")
    columns = resolve_columns("common_voice")
    hf = []
    for i, n in enumerate(NAMES):
        row = {"audio": str(tmp_path / "a.wav"), "sentence": "x", "client_id": "c", "locale": n}
        hf += row_items(row, i, columns, source)

    for items in (
        list(read_manifest(tmp_path / "m.jsonl", "French")),
        list(read_lhotse(tmp_path / "c.jsonl", "French")),
        hf,
    ):
        assert [i.language for i in items] == CODES
    # what keys on the code: the WER normaliser (English; per character for Chinese) …
    assert is_english(hf[0].language) and splits_characters(hf[1].language)
    # … and whisperX's default aligner model per language
    from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF, DEFAULT_ALIGN_MODELS_TORCH

    defaults = DEFAULT_ALIGN_MODELS_HF | DEFAULT_ALIGN_MODELS_TORCH
    assert {hf[0].language, hf[1].language, hf[3].language} <= set(defaults)  # en, zh, es


def test_a_saved_dataset_with_language_names(tmp_path) -> None:
    """Through ``datasets`` itself: a ``language`` column of names."""
    sf.write(tmp_path / "a.wav", np.zeros(8000, np.float32), 16000)
    ds = datasets.Dataset.from_dict(
        {"audio": [str(tmp_path / "a.wav")] * 2, "text": ["x", "y"], "lang": ["German", "de"]}
    ).cast_column("audio", datasets.Audio())
    ds.save_to_disk(str(tmp_path / "ds"))
    from data_prep.hf_source import hf_items

    source = SourceConfig(kind="hf", path=str(tmp_path / "ds"), language_column="lang")
    assert [i.language for i in hf_items(source)] == ["de", "de"]
