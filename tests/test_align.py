"""Aligners: interface, whisperX batching == whisperX one by one, oracle emissions, MMS, readers.

Models are tiny and random (``data_prep.align.testing``): they exercise every code path and the
batched == unbatched equivalence; only oracle emissions have known word times.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from data_prep.align.base import (
    AlignedWord,
    AlignmentError,
    AlignmentFailure,
    AlignRequest,
    interpolate_missing,
)
from data_prep.align.testing import (
    CHAR_VOCAB,
    MMS_LABELS,
    frames_for,
    noise_audio,
    oracle_logits,
    random_torchaudio_wav2vec2,
    save_random_wav2vec2_ctc,
)
from vrt_finetune.constants import SAMPLE_RATE, SAMPLES_PER_ENCODER_FRAME

FRAME_S = SAMPLES_PER_ENCODER_FRAME / SAMPLE_RATE
WORDS = "the quick brown fox jumps over a lazy dog while seven birds sing".split()  # noqa: SIM905


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _utterances(n: int, seed: int = 0) -> list[AlignRequest]:
    """``n`` noise utterances of 0.6-3 s, dense in words so every frame's decision counts."""
    rng = np.random.default_rng(seed)
    items = []
    for k in range(n):
        seconds = float(rng.uniform(0.6, 3.0))
        n_words = max(1, int(seconds * 3.5))
        words = [WORDS[int(i)] for i in rng.integers(0, len(WORDS), n_words)]
        items.append(AlignRequest(noise_audio(seconds, seed=seed * 100 + k), words, "en"))
    return items


# --- interface -----------------------------------------------------------------------------


def test_interpolate_missing_fills_gaps_by_length() -> None:
    a, d = AlignedWord("a", 0.5, 1.0, 0.9), AlignedWord("d", 2.0, 2.5, 0.8)
    out = interpolate_missing(["a", "bb", "c", "d", "e"], [a, None, None, d, None], 3.0)
    assert out[0] is a and out[3] is d
    # "bb" and "c" share 1.0-2.0 as 2:1; "e" takes the rest up to the duration.
    assert (out[1].start, out[1].end) == pytest.approx((1.0, 1.0 + 2 / 3))
    assert (out[2].start, out[2].end) == pytest.approx((1.0 + 2 / 3, 2.0))
    assert (out[4].start, out[4].end) == (2.5, 3.0)
    assert all(w.flagged and w.score == 0.0 for w in (out[1], out[2], out[4]))
    assert not out[0].flagged


def test_interpolate_missing_edges() -> None:
    assert [(w.start, w.end) for w in interpolate_missing(["x", "y"], [None, None], 2.0)] == [
        (0.0, 1.0),
        (1.0, 2.0),
    ]
    # Overlapping neighbours leave no gap: zero-length spans at the left neighbour's end.
    a, b = AlignedWord("a", 0.0, 1.2, 1.0), AlignedWord("b", 1.0, 2.0, 1.0)
    mid = interpolate_missing(["a", "m", "b"], [a, None, b], 2.0)[1]
    assert (mid.start, mid.end) == (1.2, 1.2)
    with pytest.raises(ValueError):
        interpolate_missing(["a"], [], 1.0)
    with pytest.raises(ValueError):
        AlignedWord("a", 1.0, 0.5, 1.0)


def test_punkt_tab_is_written_once_and_loads(tmp_path: Path, monkeypatch) -> None:
    import nltk.data

    from data_prep import nltk_data

    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))
    created = nltk_data.write_punkt_tab(tmp_path, ["english", "german"])
    assert len(created) == 2 * len(nltk_data.PUNKT_TAB_FILES)
    assert nltk_data.write_punkt_tab(tmp_path, ["english", "german"]) == []
    assert (tmp_path / "tokenizers/punkt_tab/german/collocations.tab").is_file()
    nltk_data.check(tmp_path, ["english", "german"])  # loads through nltk.data.load


# --- batching through the acoustic model ---------------------------------------------------


def test_plan_batches_sorts_and_respects_budget() -> None:
    from data_prep.align.ctc_batch import plan_batches

    lengths = [5, 30, 10, 25, 8, 40]
    batches = plan_batches(lengths, max_batch_samples=60, batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert batches[0] == [5]  # 40 + 30 would pad to 80 > 60
    for b in batches:
        assert len(b) <= 3 and len(b) * lengths[b[0]] <= max(60, lengths[b[0]])
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)
    # At most 20 % padding: 25 may join 30, 10 may not join 25.
    assert plan_batches(lengths, 10**6, 8, max_padding=0.2) == [[5], [1, 3], [2, 4], [0]]


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("w2v")
    return {
        norm: save_random_wav2vec2_ctc(root / norm, feat_extract_norm=norm)
        for norm in ("group", "layer")
    }


def _torchaudio_models() -> dict[str, torch.nn.Module]:
    from torchaudio.pipelines._wav2vec2.utils import _extend_model

    return {
        "ta-group": random_torchaudio_wav2vec2(len(CHAR_VOCAB), extractor_mode="group_norm"),
        # What MMS_FA's bundle returns: input layer norm and log_softmax in a wrapper.
        "ta-mms": _extend_model(
            random_torchaudio_wav2vec2(len(MMS_LABELS)), normalize_waveform=True,
            apply_log_softmax=True,
        ),
    }  # fmt: skip


@pytest.mark.parametrize("name", ["group", "layer", "ta-group", "ta-mms"])
def test_batched_logits_match_single(name: str, hf_dirs: dict[str, Path]) -> None:
    from transformers import Wav2Vec2ForCTC

    from data_prep.align.ctc_batch import ctc_logits

    if name.startswith("ta-"):
        model, kind = _torchaudio_models()[name], "torchaudio"
    else:
        model, kind = Wav2Vec2ForCTC.from_pretrained(hf_dirs[name]).eval(), "huggingface"
    waves = [torch.from_numpy(r.audio) for r in _utterances(4, seed=1)]
    batched = ctc_logits(model, kind, waves, "cpu")
    for wave, out in zip(waves, batched, strict=True):
        alone = ctc_logits(model, kind, [wave], "cpu")[0]
        assert out.shape == alone.shape
        torch.testing.assert_close(out, alone, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def wx(hf_dirs: dict[str, Path]):
    from data_prep.align.whisperx_backend import WhisperXAligner

    # A local save_pretrained directory, loaded by whisperx.load_align_model.
    # max_padding=1: batch whatever the lengths (on CPU the default batches only equal ones).
    return WhisperXAligner("en", str(hf_dirs["group"]), batch_size=8, max_padding=1.0)


def _times(words: list[AlignedWord]) -> list[tuple[str, float, float]]:
    return [(w.word, w.start, w.end) for w in words]


def _assert_same_as_whisperx(aligner, model, metadata, items) -> None:
    from data_prep.align.testing import reference_align

    results = aligner.align_batch(items)
    for item, got in zip(items, results, strict=True):
        ref = reference_align(model, metadata, item.audio, item.words)
        assert isinstance(got, list), got
        assert _times(got) == [(r["word"], r["start"], r["end"]) for r in ref]
        assert [w.score for w in got] == pytest.approx([r["score"] for r in ref], abs=2e-3)


def test_whisperx_batched_equals_whisperx_align(wx) -> None:
    model, metadata = wx.model_for("en")
    _assert_same_as_whisperx(wx, model, metadata, _utterances(6))


@pytest.mark.parametrize("norm", ["layer", "ta-group"])
def test_whisperx_batched_equals_other_model_kinds(norm: str, hf_dirs: dict[str, Path]) -> None:
    from data_prep.align.whisperx_backend import WhisperXAligner

    if norm == "layer":
        aligner = WhisperXAligner("en", str(hf_dirs["layer"]), max_padding=1.0)
        model, metadata = aligner.model_for("en")
    else:  # whisperX's English default is a torchaudio group-norm model
        model = _torchaudio_models()["ta-group"]
        labels = ("-", *CHAR_VOCAB[1:])
        metadata = {"language": "en", "type": "torchaudio", "dictionary": {}}
        metadata["dictionary"] = {c: i for i, c in enumerate(labels)}
        aligner = WhisperXAligner.from_loaded(model, metadata, max_padding=1.0)
    _assert_same_as_whisperx(aligner, model, metadata, _utterances(4, seed=2))


def test_whisperx_oracle_emissions_give_known_times(wx) -> None:
    from data_prep.align.whisperx_emissions import emissions_to_words

    _, metadata = wx.model_for("en")
    spans = [("she", 0.30, 0.52), ("sat", 0.60, 0.90), ("down", 1.20, 1.64), ("here", 2.00, 2.40)]
    n_frames = 140
    n_samples = n_frames * SAMPLES_PER_ENCODER_FRAME + 80  # exactly n_frames wav2vec2 frames
    assert frames_for(n_samples / SAMPLE_RATE) == n_frames
    d = metadata["dictionary"]
    logits = oracle_logits(spans, n_frames, d, blank=d["<pad>"], delimiter="|")
    got = emissions_to_words([logits], [[w for w, _, _ in spans]], metadata, [n_samples])[0]
    for (word, start, end), w in zip(spans, got, strict=True):
        assert w.word == word and not w.flagged
        assert abs(w.start - start) <= FRAME_S and abs(w.end - end) <= FRAME_S
        assert w.score > 0.9


def test_whisperx_unknown_characters_are_flagged(wx) -> None:
    audio = noise_audio(2.0, seed=5)
    got = wx.align(AlignRequest(audio, ["Hello", "42", "wörld", "x y"], "en"))
    assert [w.word for w in got] == ["Hello", "42", "wörld", "x y"]
    assert [w.flagged for w in got] == [False, True, False, False]
    assert all(a.end <= b.start for a, b in itertools.pairwise(got))


def test_whisperx_characters_as_words_language(wx) -> None:
    # whisperX: one character = one word
    got = wx.align(AlignRequest(noise_audio(1.5, seed=6), ["ab", "cde"], "ja"))
    assert [w.word for w in got] == ["ab", "cde"]
    assert got[0].end <= got[1].start


def test_whisperx_failures_are_reported_not_raised(wx) -> None:
    too_short = AlignRequest(noise_audio(0.1), WORDS * 2, "en")
    no_words = AlignRequest(noise_audio(1.0), ["", " "], "en")
    ok = _utterances(1)[0]
    results = wx.align_batch([too_short, ok, no_words])
    assert isinstance(results[0], AlignmentFailure) and results[0].reason == "backtrack_failed"
    assert isinstance(results[1], list)
    assert isinstance(results[2], AlignmentFailure) and results[2].reason == "nothing_to_align"
    with pytest.raises(AlignmentError):
        wx.align(too_short)


# --- MMS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mms():
    from data_prep.align.mms_backend import MMSAligner

    model = _torchaudio_models()["ta-mms"]
    labels = {c: i for i, c in enumerate(MMS_LABELS)}
    return MMSAligner(model, labels, blank=0, batch_size=8, max_padding=1.0)


def test_mms_batched_equals_one_by_one(mms) -> None:
    items = _utterances(5, seed=3)
    batched = mms.align_batch(items)
    for item, got in zip(items, batched, strict=True):
        assert isinstance(got, list)
        assert _times(got) == _times(mms.align(item))
        assert len(got) == len(item.words)


def test_mms_oracle_emissions_give_known_times(mms) -> None:
    from data_prep.align.mms_backend import emissions_to_words

    spans = [("hello", 0.20, 0.60), ("big", 0.80, 1.00), ("world", 1.50, 2.10)]
    n_frames = 120
    logits = oracle_logits(spans, n_frames, mms.char_ids, blank=0)
    words = ["Hello", "big", "world"]
    n_samples = [n_frames * 320 + 80]
    got = emissions_to_words([logits], [words], mms.char_ids, blank=0, n_samples=n_samples)[0]
    for (_, start, end), w in zip(spans, got, strict=True):
        assert abs(w.start - start) <= FRAME_S and abs(w.end - end) <= FRAME_S
        assert not w.flagged and w.score > 0.9


def test_mms_unplaceable_word_is_interpolated(mms) -> None:
    got = mms.align(AlignRequest(noise_audio(2.0, seed=7), ["one", "42", "three"], "en"))
    assert [w.flagged for w in got] == [False, True, False]
    assert got[0].end <= got[1].start <= got[1].end <= got[2].start
    result = mms.align_batch([AlignRequest(noise_audio(0.1), WORDS, "en")])[0]
    assert isinstance(result, AlignmentFailure) and result.reason == "too_short"


def test_mms_romanizes_other_scripts(mms) -> None:
    from data_prep.align.mms_backend import romanize

    assert romanize("Café", mms.char_ids) == "cafe"
    assert romanize("привет", mms.char_ids) == "privet"  # through uroman


def test_mms_from_pretrained_uses_word_delimiter(hf_dirs: dict[str, Path]) -> None:
    from data_prep.align.mms_backend import MMSAligner

    aligner = MMSAligner.from_pretrained(str(hf_dirs["layer"]), local_files_only=True)
    assert aligner.delimiter_id == CHAR_VOCAB.index("|") and aligner.blank == 0
    assert aligner.normalize  # the processor's do_normalize
    got = aligner.align(AlignRequest(noise_audio(1.5, seed=8), ["good", "day"], "en"))
    assert [w.word for w in got] == ["good", "day"] and got[0].end <= got[1].start


# --- given timestamps ----------------------------------------------------------------------

TEXTGRID_LONG = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 2.5
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "TextTier"
        name = "events"
        xmin = 0
        xmax = 2.5
        points: size = 1
        points [1]:
            number = 0.7
            mark = "click"
    item [2]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 2.5
        intervals: size = 4
        intervals [1]:
            xmin = 0
            xmax = 0.4
            text = ""
        intervals [2]:
            xmin = 0.4
            xmax = 1.1
            text = "Hello,"
        intervals [3]:
            xmin = 1.1
            xmax = 1.9
            text = "say ""hi"""
        intervals [4]:
            xmin = 1.9
            xmax = 2.5
            text = "world"
'''

TEXTGRID_SHORT = '''File type = "ooTextFile"
Object class = "TextGrid"

0
2.5
<exists>
2
"TextTier"
"events"
0
2.5
1
0.7
"click"
"IntervalTier"
"words"
0
2.5
4
0
0.4
""
0.4
1.1
"Hello,"
1.1
1.9
"say ""hi"""
1.9
2.5
"world"
'''


@pytest.mark.parametrize("text", [TEXTGRID_LONG, TEXTGRID_SHORT], ids=["long", "short"])
def test_read_textgrid(tmp_path: Path, text: str) -> None:
    from data_prep.align.given import read_textgrid

    path = tmp_path / "a.TextGrid"
    path.write_text(text)
    expected = [("Hello,", 0.4, 1.1), ('say "hi"', 1.1, 1.9), ("world", 1.9, 2.5)]
    assert _times(read_textgrid(path)) == expected
    assert _times(read_textgrid(path, tier="words")) == expected
    path.write_bytes(text.encode("utf-16"))  # what Praat writes for non-ASCII labels
    assert _times(read_textgrid(path)) == expected
    with pytest.raises(ValueError):
        read_textgrid(path, tier="phones")


def test_read_ctm(tmp_path: Path) -> None:
    from data_prep.align.given import read_ctm

    path = tmp_path / "a.ctm"
    path.write_text(
        ";; comment\nutt2 1 0.50 0.25 b 0.7\nutt1 A 0.10 0.30 hello\nutt2 1 0.10 0.20 a 0.9\n"
    )
    ctm = read_ctm(path)
    assert _times(ctm["utt1"]) == [("hello", 0.1, pytest.approx(0.4))]
    assert [(w.word, w.score) for w in ctm["utt2"]] == [("a", 0.9), ("b", 0.7)]
    assert ctm["utt1"][0].score == 1.0


def test_read_whisperx_json(tmp_path: Path) -> None:
    from data_prep.align.given import read_whisperx_json

    result = {
        "segments": [
            {"start": 0.1, "end": 1.0, "text": " Hi there", "words": [
                {"word": "Hi", "start": 0.1, "end": 0.3, "score": 0.9},
                {"word": "there", "start": 0.4, "end": 0.8, "score": 0.8}]},
            {"start": 1.2, "end": 2.0, "text": " 42 birds", "words": [
                {"word": "42"}, {"word": "birds", "start": 1.5, "end": 1.9, "score": 0.7}]},
        ]
    }  # fmt: skip
    path = tmp_path / "a.json"
    path.write_text(json.dumps(result))
    words = read_whisperx_json(path)
    assert _times(words) == [("Hi", 0.1, 0.3), ("there", 0.4, 0.8), ("birds", 1.5, 1.9)]
    assert [w.score for w in words] == [0.9, 0.8, 0.7]
    assert _times(read_whisperx_json(result)) == _times(words)


def test_given_aligner_matches_tolerantly() -> None:
    from data_prep.align.given import GivenAligner

    given = [
        AlignedWord("Hello,", 0.4, 1.1, 1.0),
        AlignedWord("42", 1.2, 1.8, 1.0),
        AlignedWord("uh", 1.8, 1.9, 1.0),  # not in the transcript: dropped
        AlignedWord("WORLD!", 2.0, 2.4, 0.8),
    ]
    words = ["hello", "forty", "two", "big", "world", "again"]
    request = AlignRequest(np.zeros(3 * SAMPLE_RATE, np.float32), words, "en", given)
    got = GivenAligner().align(request)
    assert [w.word for w in got] == words
    assert (got[0].start, got[0].end, got[0].flagged) == (0.4, 1.1, False)
    assert (got[4].start, got[4].end, got[4].score, got[4].flagged) == (2.0, 2.4, 0.8, False)
    # "42" → "forty two" (+ "big"): the given span is shared out, flagged.
    assert got[1].start == pytest.approx(1.2) and all(w.flagged for w in got[1:4])
    assert got[3].end <= 2.0
    assert (got[5].start, got[5].end, got[5].flagged) == (2.4, 3.0, True)
