"""Boundary scoring: known offsets come back exactly, dropped words are missing, readers, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from shard_factory import make_dataset

from data_prep.align.base import AlignedWord
from data_prep.espeak_worker import espeak_available
from data_prep.score import KeyMismatchError, score_alignments, score_words, write_report

pytestmark = pytest.mark.skipif(not espeak_available(), reason="libespeak-ng not installed")

START_SHIFT, END_SHIFT = 0.030, -0.010
"""Offsets injected into the reference: every start 30 ms later, every end 10 ms earlier."""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tokenizer) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("score") / "ds"
    return root, make_dataset(root, tokenizer)


def _ctm(path: Path, written: dict, start_shift: float, end_shift: float) -> Path:
    lines = [";; reference with injected offsets"]
    for samples in written.values():
        for s in samples:
            for w in s.words:
                start, end = w.start - start_shift, w.end - end_shift
                lines.append(f"{s.key} 1 {start:.4f} {end - start:.4f} {w.word}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_injected_offsets_come_back_exactly(dataset, tmp_path: Path) -> None:
    root, written = dataset
    report = score_alignments(root, _ctm(tmp_path / "ref.ctm", written, START_SHIFT, END_SHIFT))
    n_words = sum(len(s.words) for samples in written.values() for s in samples)
    overall = report.overall.summary()
    assert overall["matched"] == n_words and overall["missing"] == overall["extra"] == 0
    assert overall["mean_start_ms"] == pytest.approx(30, abs=0.2)
    assert overall["median_start_ms"] == pytest.approx(30, abs=0.2)
    assert overall["mean_end_ms"] == pytest.approx(10, abs=0.2)
    np.testing.assert_allclose(report.overall.start_errors, START_SHIFT, atol=2e-4)
    np.testing.assert_allclose(report.overall.end_errors, END_SHIFT, atol=2e-4)
    # ends (10 ms) are within 20 ms, starts (30 ms) only within 50 ms
    assert overall["within_20ms"] == pytest.approx(0.5)
    assert overall["within_50ms"] == overall["within_100ms"] == 1.0
    assert set(report.per_speaker) == {"spk0", "spk1"}
    assert sum(s.matched for s in report.per_speaker.values()) == n_words


def test_dropped_word_is_missing() -> None:
    ref = [AlignedWord(w, i * 0.5, i * 0.5 + 0.4, 1.0) for i, w in enumerate(["a", "b", "c", "d"])]
    stats = score_words([ref[0], ref[1], ref[3]], ref)
    assert (stats.matched, stats.missing, stats.extra) == (3, 1, 0)
    assert stats.start_errors == [0.0, 0.0, 0.0]
    extra = score_words([*ref, AlignedWord("e", 2.0, 2.2, 1.0)], ref)
    assert (extra.matched, extra.missing, extra.extra) == (4, 0, 1)


def test_textgrid_and_whisperx_references(dataset, tmp_path: Path) -> None:
    root, written = dataset
    folder = tmp_path / "per_key"
    folder.mkdir()
    whisperx = {}
    for samples in written.values():
        for s in samples:
            rows = [(w.start, w.end, w.word) for w in s.words]
            intervals = "\n".join(f'{a} {b} "{t}"' for a, b, t in rows)
            (folder / f"{s.key}.TextGrid").write_text(
                'File type = "ooTextFile"\nObject class = "TextGrid"\n0\n'
                f'{s.duration}\n<exists>\n1\n"IntervalTier"\n"words"\n0\n{s.duration}\n'
                f"{len(rows)}\n{intervals}\n"
            )
            whisperx[s.key] = {
                "word_segments": [{"word": t, "start": a, "end": b} for a, b, t in rows]
            }
    (tmp_path / "wx.json").write_text(json.dumps(whisperx))
    for reference in (folder, tmp_path / "wx.json", root):
        overall = score_alignments(root, reference).overall.summary()
        assert overall["missing"] == overall["extra"] == 0
        assert overall["mean_start_ms"] == pytest.approx(0, abs=0.1)


def test_report_files_and_histogram(dataset, tmp_path: Path) -> None:
    root, written = dataset
    report = score_alignments(root, _ctm(tmp_path / "ref.ctm", written, START_SHIFT, END_SHIFT))
    paths = write_report(report, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["overall"]["matched"] == report.overall.matched
    assert "| **all** |" in paths["markdown"].read_text()
    image = np.asarray(Image.open(paths["histogram"]).convert("L"), dtype=float)
    assert image.shape[1] > 400 and image.std() > 10  # a drawn chart, not a blank canvas


def test_reference_with_other_keys_is_refused(dataset, tmp_path: Path) -> None:
    root, _ = dataset
    ctm = tmp_path / "other.ctm"
    ctm.write_text("utt-a 1 0.1 0.2 hello\nutt-b 1 0.1 0.2 world\n")
    with pytest.raises(KeyMismatchError, match=r"train-000.*utt-a"):
        score_alignments(root, ctm)


def test_a_recipe_reference_puts_the_figures_on_the_card(tmp_path) -> None:
    """``reference:`` in a recipe: vrt-prep scores its shards when it finishes."""
    from data_prep.cli import run
    from data_prep.config import load_config
    from vrt_finetune.tokenizer import build_test_tokenizer

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "data" / "synthetic_demo.yaml"
    tok = build_test_tokenizer(tmp_path / "tok")
    common = ["source.n_general=4", "source.n_medical=0", f"tokenizer={tok}", "workers=1"]
    run(load_config(recipe, [*common, f"output={tmp_path / 'exact'}"]), progress=False)
    run(
        load_config(
            recipe,
            [*common, f"output={tmp_path / 'again'}", f"reference={tmp_path / 'exact'}"],
        ),
        progress=False,
    )
    card = (tmp_path / "again" / "README.md").read_text()
    assert "Against reference times" in card and "100 % of boundaries within" in card
    assert (tmp_path / "again" / "score" / "score.json").is_file()
