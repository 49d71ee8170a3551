"""One aligner interface: given timestamps, whisperX and MMS through the same request and call,
long-form alignment as a capability of the aligner, and ``make_aligner`` for each backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.align import (
    AlignedWord,
    AlignmentError,
    AlignmentFailure,
    AlignRequest,
    GivenAligner,
    GivenFirst,
    make_aligner,
)
from data_prep.align.given import match_given
from data_prep.align.testing import noise_audio, save_random_wav2vec2_ctc
from data_prep.config import AlignerConfig
from data_prep.spoken_form import normalize_transcript, spoken_words
from vrt_finetune.constants import SAMPLE_RATE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NO_TIMESTAMPS = AlignmentFailure(
    "no_timestamps", "aligner 'given' but the item has no word timestamps"
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_wav2vec2_ctc(tmp_path_factory.mktemp("w2v") / "tiny")


@pytest.fixture(scope="module")
def wx(model_dir: Path):
    return make_aligner(AlignerConfig(backend="whisperx", model=str(model_dir)), "en")


@pytest.fixture(scope="module")
def mms(model_dir: Path):
    return make_aligner(AlignerConfig(backend="mms", model=str(model_dir)), "en")


def _request(text: str, given: list[AlignedWord] | None, seconds: float = 3.0) -> AlignRequest:
    norm = normalize_transcript(text, "en")
    audio = np.zeros(round(seconds * SAMPLE_RATE), np.float32)
    return AlignRequest(audio, spoken_words(norm), "en", given, norm)


# --- the given aligner ------------------------------------------------------------------------


def test_given_times_of_written_words_are_shared_by_their_spoken_forms() -> None:
    given = [
        AlignedWord("Take", 0.2, 0.5, 0.9),
        AlignedWord("42", 0.6, 1.2, 0.8),
        AlignedWord("pills.", 1.3, 1.7, 0.7),
    ]
    got = GivenAligner().align(_request("Take 42 pills.", given))
    assert [(w.word, w.start, w.end, w.score) for w in got] == [
        ("take", 0.2, 0.5, 0.9),
        ("forty", 0.6, pytest.approx(0.9), 0.8),  # "42" → "forty two": its span in halves
        ("two", pytest.approx(0.9), 1.2, 0.8),
        ("pills", 1.3, 1.7, 0.7),
    ]
    assert not any(w.flagged for w in got)


def test_given_times_that_are_not_one_per_written_word_are_matched_by_letters() -> None:
    given = [AlignedWord("take", 0.2, 0.5, 1.0), AlignedWord("pills", 1.3, 1.7, 1.0)]
    request = _request("Take 42 pills.", given)
    got = GivenAligner().align(request)
    assert got == match_given(given, request.words, 3.0)
    assert [w.flagged for w in got] == [False, True, True, False]
    # without the written words, given times are matched the same way
    unwritten = AlignRequest(request.audio, request.words, "en", given)
    assert GivenAligner().align(unwritten) == got


def test_an_item_without_timestamps_is_a_failure_not_an_error() -> None:
    aligner = GivenAligner()
    with_times = _request("Hello there", [AlignedWord("Hello", 0.1, 0.4, 1.0)])
    without = _request("Hello there", None)
    assert aligner.refusal(without) == NO_TIMESTAMPS and aligner.refusal(with_times) is None
    results = aligner.align_batch([with_times, without])
    assert isinstance(results[0], list) and results[1] == NO_TIMESTAMPS
    with pytest.raises(AlignmentError, match="no_timestamps"):
        aligner.align(without)


def test_given_first_sends_only_untimed_requests_to_the_acoustic_aligner(mms, monkeypatch):
    inner = mms.aligner
    seen: list[AlignRequest] = []
    original = inner.align_batch

    def spy(requests):
        seen.extend(requests)
        return original(requests)

    timed = _request(
        "Good day", [AlignedWord("Good", 0.1, 0.4, 1.0), AlignedWord("day", 0.5, 1, 1)]
    )
    untimed = AlignRequest(noise_audio(1.5, seed=8), ["good", "day"], "en")
    monkeypatch.setattr(inner, "align_batch", spy)
    results = mms.align_batch([timed, untimed, timed])
    monkeypatch.undo()
    assert seen == [untimed]  # one batch of the requests it aligns
    assert results[0] == results[2] == GivenAligner().align(timed)
    assert results[1] == inner.align(untimed)
    assert mms.refusal(untimed) is None and mms.refusal(timed) is None


# --- long-form alignment is a capability --------------------------------------------------------


def test_ctc_aligners_have_a_long_form_variant_and_the_given_aligner_none(wx, mms) -> None:
    from data_prep.align.ctc_aligner import CTCAligner
    from data_prep.align.longform import LongFormAligner, LongFormOptions

    assert GivenAligner().long_form() is None
    for composite in (wx, mms):
        assert isinstance(composite, GivenFirst) and isinstance(composite.aligner, CTCAligner)
        long_form = composite.aligner.long_form()
        assert isinstance(long_form, LongFormAligner) and long_form.aligner is composite.aligner
        assert long_form.long_form() is long_form  # it takes any length already
        options = LongFormOptions(window_seconds=10.0)
        assert composite.aligner.long_form(options).options is options
        # behind given times, as the short one: a timed item keeps its times at any length
        wrapped = composite.long_form()
        assert isinstance(wrapped, GivenFirst) and isinstance(wrapped.aligner, LongFormAligner)
        # a recording that fits one window is aligned in one piece, as without long-form
        request = AlignRequest(noise_audio(2.0, seed=3), ["one", "more", "time"], "en")
        assert wrapped.align(request) == composite.align(request)
    with pytest.raises(TypeError, match="CTC aligner"):
        LongFormAligner(GivenAligner())


# --- make_aligner ----------------------------------------------------------------------------


def test_make_aligner_for_each_backend(wx, mms) -> None:
    from data_prep.align.mms_backend import MMSAligner
    from data_prep.align.whisperx_backend import WhisperXAligner

    assert isinstance(make_aligner(AlignerConfig(backend="given")), GivenAligner)
    assert isinstance(wx.aligner, WhisperXAligner) and "en" in wx.aligner._models  # loaded now
    assert isinstance(mms.aligner, MMSAligner) and mms.aligner.delimiter_id is not None
    with pytest.raises(ValueError, match="unknown aligner backend"):
        make_aligner(AlignerConfig(backend="kaldi"))  # type: ignore[arg-type]


# --- through vrt-prep --------------------------------------------------------------------------


def _prep(tmp_path: Path, tokenizer, rows: list[dict], **extra) -> dict:
    from data_prep.cli import run
    from data_prep.config import load_config

    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = {
        "output": str(tmp_path / "out"),
        "tokenizer": str(tokenizer.path),
        "source.kind": "manifest",
        "source.path": str(manifest),
        "filters.max_words_per_second": 100.0,
        "filters.max_flagged_fraction": 1.0,
        "shards.valid_fraction": 0.0,
        "shards.test_fraction": 0.0,
    } | extra
    return run(load_config(None, [f"{k}={json.dumps(v)}" for k, v in overrides.items()]), False)


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """An espeak-ng sentence with its word times in a whisperX JSON beside it."""
    from data_prep.synth import synthesize

    d = tmp_path_factory.mktemp("spoken")
    utt = synthesize("The dose is 42 mg today.")
    sf.write(d / "a.wav", utt.audio, SAMPLE_RATE)
    words = [{"word": w.word, "start": w.start, "end": w.end, "score": 1.0} for w in utt.words]
    (d / "a.json").write_text(json.dumps({"segments": [{"words": words}]}))
    return d, words


def test_items_without_timestamps_are_counted_by_the_given_backend(spoken, tmp_path, tokenizer):
    d, _ = spoken
    rows = [
        {"audio": str(d / "a.wav"), "text": "The dose is 42 mg today.", "id": "timed"},
        {"audio": str(d / "a.wav"), "text": "The dose is 42 mg today.", "id": "untimed"},
    ]
    rows[0]["alignment"] = str(d / "a.json")
    summary = _prep(tmp_path, tokenizer, rows, **{"aligner.backend": "given"})
    assert summary["kept_samples"] == 1 and summary["rejects_by_reason"] == {"no_timestamps": 1}
    (example,) = summary["reject_examples"]
    assert example["key"].endswith("untimed")
    assert example["message"].endswith(": " + NO_TIMESTAMPS.message)


def test_acoustic_backends_keep_the_times_an_item_has(spoken, model_dir, tmp_path, tokenizer):
    import webdataset as wds

    d, words = spoken
    row = {"audio": str(d / "a.wav"), "text": "The dose is 42 mg today.", "alignment": "a.json"}
    row["alignment"] = str(d / row["alignment"])
    extra = {"aligner.backend": "whisperx", "aligner.model": str(model_dir)}
    summary = _prep(tmp_path, tokenizer, [row], **extra)
    assert summary["kept_samples"] == 1
    (shard,) = (tmp_path / "out").rglob("*.tar")
    (sample,) = wds.WebDataset(str(shard), shardshuffle=False)
    meta = json.loads(sample["json"])
    assert meta["offset"] == 0.0  # one segment from the start: times as given
    got = [(w["word"], w["start"], w["end"]) for w in meta["words"]]
    want = [(w["word"], w["start"], w["end"]) for w in words]
    assert got == [(w, pytest.approx(s, abs=1e-4), pytest.approx(e, abs=1e-4)) for w, s, e in want]
