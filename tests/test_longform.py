"""Long-form alignment: windowed emissions, chunked Viterbi, pieces, and the pipeline around it.

Known answers come from oracle emissions (``data_prep.align.testing``): posteriors peaked at
known word times, which the one-piece path gives back within one frame; tiny random models only
exercise the plumbing (their word times mean nothing, so they are never compared).
"""

from __future__ import annotations

import json
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from data_prep.align.base import AlignedWord, AlignmentError
from data_prep.align.ctc_viterbi import align_chunk
from data_prep.align.longform import (
    LongFormAligner,
    LongFormOptions,
    plan_pieces,
    stitched_log_probs,
    window_plan,
)
from data_prep.align.testing import (
    MMS_LABELS,
    oracle_logits,
    oracle_spans,
    random_torchaudio_wav2vec2,
    save_random_wav2vec2_ctc,
)
from vrt_finetune.constants import SAMPLE_RATE, SAMPLES_PER_ENCODER_FRAME

HOP = SAMPLES_PER_ENCODER_FRAME
FRAME_S = HOP / SAMPLE_RATE
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _within_a_frame(got: list[AlignedWord], spans: list[tuple[str, float, float]]) -> float:
    """Share of words whose start and end are within one 20 ms frame of ``spans``."""
    tol = FRAME_S + 1e-6
    pairs = zip(got, spans, strict=True)
    return float(
        np.mean([abs(g.start - s) <= tol and abs(g.end - e) <= tol for g, (_, s, e) in pairs])
    )


# --- 1. emissions, window by window -------------------------------------------------------


@pytest.mark.parametrize("seconds", [0.5, 30.0, 31.0, 61.7, 95.99])
def test_window_plan_keeps_every_frame_once(seconds: float) -> None:
    window, context = 10 * SAMPLE_RATE, 2 * SAMPLE_RATE  # multiples of the hop
    n = round(seconds * SAMPLE_RATE)
    plan = window_plan(n, HOP, window, context)
    firsts = [k for _, _, k in plan]
    assert firsts[0] == 0 and firsts == sorted(set(firsts))
    for i, (s0, s1, keep_from) in enumerate(plan):
        assert s0 % HOP == 0 and s0 == max(0, keep_from * HOP - context)
        if i + 1 < len(plan):  # the full right context of its last kept frame
            assert s1 == firsts[i + 1] * HOP + context <= n
        else:
            assert s1 == n and n - keep_from * HOP < window + context


class _LocalModel:
    """A CTC "model" that sees 400 samples per frame and nothing else: windows must stitch
    into exactly its one-pass output."""

    def __init__(self, vocab: int = 9) -> None:
        torch.manual_seed(0)
        self.conv = torch.nn.Conv1d(1, vocab, kernel_size=400, stride=HOP)

    def __call__(self, waves) -> list[torch.Tensor]:
        with torch.inference_mode():
            outs = [self.conv(torch.from_numpy(w)[None, None])[0].T for w in waves]
        return [torch.log_softmax(o, dim=-1) for o in outs]


@pytest.mark.parametrize("seconds", [40.0, 66.0, 99.99])
@pytest.mark.parametrize("per_call", [1, 2])
def test_stitched_emissions_equal_one_pass_for_a_local_model(seconds: float, per_call) -> None:
    audio = np.random.default_rng(0).standard_normal(round(seconds * SAMPLE_RATE))
    audio = audio.astype(np.float32)
    model = _LocalModel()
    options = LongFormOptions(window_seconds=10.0, context_seconds=1.0)
    stitched = stitched_log_probs(model, audio, HOP, options, windows_per_call=per_call)
    one_pass = model([audio])[0]
    assert stitched.shape == one_pass.shape
    torch.testing.assert_close(stitched, one_pass, atol=1e-4, rtol=1e-4)


def test_stitched_frames_of_a_wav2vec2_match_one_pass(wx) -> None:
    audio = np.random.default_rng(1).standard_normal(47 * SAMPLE_RATE + 123).astype(np.float32)
    backend = LongFormAligner(wx).backend("en")
    options = LongFormOptions(window_seconds=10.0, context_seconds=2.0)
    stitched = stitched_log_probs(backend.frame_log_probs, audio, backend.hop, options)
    one_pass = backend.frame_log_probs([audio])[0]
    assert stitched.shape == one_pass.shape  # the same frame grid
    # values differ by what the model sees (group norm over its input, attention span) but a
    # frame's best label rarely changes (99 % here)
    assert (stitched.argmax(-1) == one_pass.argmax(-1)).float().mean() > 0.95


# --- 2. the chunk Viterbi -----------------------------------------------------------------


def test_chunk_viterbi_with_fixed_ends_equals_forced_align() -> None:
    import torchaudio.functional as taf

    rng = np.random.default_rng(0)
    for _ in range(4):
        lp = torch.log_softmax(torch.tensor(rng.normal(size=(120, 7)) * 3), -1).float()
        words = [list(rng.integers(1, 7, rng.integers(1, 4))) for _ in range(12)]
        flat = torch.tensor([[t for w in words for t in w]], dtype=torch.int32)
        path, _ = taf.forced_align(lp[None], flat, blank=0)
        want = float(lp[torch.arange(120), path[0]].sum())
        end_costs = np.full(len(words) + 1, np.inf)
        end_costs[-1] = 0.0
        got = align_chunk(lp.numpy(), words, 0, None, end_costs)
        assert got.log_prob == pytest.approx(want, abs=1e-3)
        assert got.complete.all() and got.start_word == 0


def _spelled(labels: list[int], vocab: int = 5, peak: float = 10.0) -> np.ndarray:
    """Log-probabilities that spell ``labels`` frame by frame (0 = blank)."""
    lp = np.full((len(labels), vocab), -peak)
    lp[np.arange(len(labels)), labels] = 0.0
    return lp


def test_chunk_viterbi_skips_text_the_audio_lacks_at_its_ends() -> None:
    lp = _spelled([0, 3, 0, 4, 0, 0])  # the audio says word "cd" (3, 4) only
    words = [[1, 2], [3, 4], [1]]  # the text says "ab cd a"
    free = align_chunk(lp, words, 0, np.array([0.0, 2.0, 4.0, 6.0]), np.array([6, 4, 2, 0.0]))
    assert free.start_word == 1 and list(free.complete) == [False, True, False]
    assert (free.first[1], free.last[1]) == (1, 3)
    # ends fixed: every word is forced into the six frames
    forced = align_chunk(lp, words, 0, None, np.array([np.inf, np.inf, np.inf, 0.0]))
    assert forced.start_word == 0 and forced.complete.all() and forced.first[0] == 0
    # skipping dearer than the mismatch, end free: the path waits in the first blank
    costly = align_chunk(lp, words, 0, np.array([0.0, 99.0, 99.0, 99.0]))
    assert costly.start_word == 0 and not costly.complete.any()


# --- 3. oracle emissions: known times come back -------------------------------------------


@pytest.fixture(scope="module")
def mms():
    from data_prep.align.mms_backend import MMSAligner

    model = random_torchaudio_wav2vec2(len(MMS_LABELS))
    return MMSAligner(model, {c: i for i, c in enumerate(MMS_LABELS)}, blank=0)


@pytest.fixture(scope="module")
def wx(tmp_path_factory: pytest.TempPathFactory):
    from data_prep.align.whisperx_backend import WhisperXAligner

    return WhisperXAligner("en", str(save_random_wav2vec2_ctc(tmp_path_factory.mktemp("w2v"))))


def _oracle(aligner, spans, n_frames: int) -> torch.Tensor:
    if aligner.name == "mms":
        logits = oracle_logits(spans, n_frames, aligner.char_ids, blank=0)
    else:
        d = aligner.model_for("en")[1]["dictionary"]
        logits = oracle_logits(spans, n_frames, d, blank=0, delimiter="|")
    return torch.log_softmax(logits, dim=-1)


def _one_piece(aligner, emissions: torch.Tensor, words: list[str], n_samples: int):
    """The ordinary path: the backend's alignment of the whole emission matrix at once."""
    if aligner.name == "mms":
        from data_prep.align.mms_backend import emissions_to_words

        ids = aligner.char_ids
        return emissions_to_words([emissions], [words], ids, blank=0, n_samples=[n_samples])[0]
    from data_prep.align.whisperx_emissions import emissions_to_words

    return emissions_to_words([emissions], [words], aligner.model_for("en")[1], [n_samples])[0]


@pytest.mark.parametrize(("backend", "seconds"), [("mms", 240.0), ("wx", 150.0)])
def test_oracle_minutes_come_back_and_agree_with_one_piece(backend, seconds, request) -> None:
    aligner = request.getfixturevalue(backend)
    n_frames = round(seconds / FRAME_S)
    spans = oracle_spans(seconds, seed=1)
    words = [w for w, _, _ in spans]
    emissions = _oracle(aligner, spans, n_frames)
    got = LongFormAligner(aligner).align_emissions(emissions, words, "en", seconds)
    assert [g.word for g in got] == words and not any(g.flagged for g in got)
    assert _within_a_frame(got, spans) >= 0.99
    ordinary = _one_piece(aligner, emissions, words, n_frames * HOP + 80)
    assert _within_a_frame(got, [(w.word, w.start, w.end) for w in ordinary]) >= 0.99


def test_text_the_audio_lacks_is_flagged_not_forced(mms) -> None:
    seconds = 150.0
    n_frames = round(seconds / FRAME_S)
    spans = oracle_spans(seconds, seed=2)
    words = [w for w, _, _ in spans]
    title = ["zebra", "quartz", "vexed", "jumping"] * 5  # a title page nobody read out
    emissions = _oracle(mms, spans, n_frames)
    got = LongFormAligner(mms).align_emissions(emissions, title + words + title, "en", seconds)
    n = len(title)
    assert all(g.flagged for g in got[:n]) and all(g.flagged for g in got[-n:])
    assert not any(g.flagged for g in got[n:-n])
    assert _within_a_frame(got[n:-n], spans) == 1.0


def test_silence_and_mismatch(mms) -> None:
    # three minutes of silence in the middle: pieces cut around it, every word still right
    n_frames = round(300 / FRAME_S)
    spans = oracle_spans(60.0, seed=3)
    spans += [(w, s + 240, e + 240) for w, s, e in oracle_spans(60.0, seed=4)]
    words = [w for w, _, _ in spans]
    got = LongFormAligner(mms).align_emissions(_oracle(mms, spans, n_frames), words, "en", 300.0)
    assert _within_a_frame(got, spans) == 1.0
    # far more text than frames: the aligner's reason, no crash
    with pytest.raises(AlignmentError) as err:
        LongFormAligner(mms).align_emissions(_oracle(mms, spans, n_frames), words * 20, "en", 300)
    assert err.value.failure.reason == "too_short"


def test_planning_memory_is_bounded_by_the_chunk() -> None:
    """Eight minutes: one trellis would hold 24 000 frames x ~14 000 states (2.7 GB in float64)."""
    seconds = 480.0
    n_frames = round(seconds / FRAME_S)
    spans = oracle_spans(seconds, seed=5)
    ids = {c: i for i, c in enumerate(MMS_LABELS)}
    emissions = torch.log_softmax(oracle_logits(spans, n_frames, ids, blank=0), -1).numpy()
    tokens = [[ids[c] for c in w] for w, _, _ in spans]
    tracemalloc.start()
    try:
        pieces = plan_pieces(emissions, tokens, 0, FRAME_S)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 60 * 2**20, f"planning peaked at {peak / 2**20:.0f} MB"
    assert [i for p in pieces for i in p.words] == list(range(len(spans)))
    assert all(p.end - p.start <= round(60 / FRAME_S) for p in pieces)
    for p in pieces:  # cuts fall in pauses: no word crosses a piece boundary
        first, last = spans[p.words[0]], spans[p.words[-1]]
        assert p.start * FRAME_S <= first[1] and last[2] <= p.end * FRAME_S


# --- 4. through vrt-prep ------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """~75 s of espeak-ng speech (three windows, two chunks) with one transcript, no times."""
    from data_prep.sentences import sentence_corpus
    from data_prep.synth import synthesize

    d = tmp_path_factory.mktemp("long")
    parts, words = [], []
    for sentence in sentence_corpus(28, seed=3):
        parts += [synthesize(sentence).audio, np.zeros(SAMPLE_RATE // 2, np.float32)]
        words += sentence.split()
    sf.write(d / "long.wav", np.concatenate(parts), SAMPLE_RATE)
    return d, words


def _prep(tmp_path: Path, tokenizer, rows: list[dict], aligner_dir: Path, **extra) -> dict:
    from data_prep.cli import run
    from data_prep.config import load_config

    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = {
        "output": str(tmp_path / "out"),
        "tokenizer": str(tokenizer.path),
        "source.kind": "manifest",
        "source.path": str(manifest),
        "aligner.backend": "whisperx",
        "aligner.model": str(aligner_dir),
        "aligner.max_seconds": 5.0,  # long-form from 5 s on: a 75 s file takes seconds
        "filters.max_duration": 12.0,
        # random acoustic model: its word times mean nothing, only the plumbing is checked
        "filters.max_words_per_second": 100.0,
        "filters.max_flagged_fraction": 1.0,
        "shards.valid_fraction": 0.0,
        "shards.test_fraction": 0.0,
    } | extra
    config = load_config(None, [f"{k}={json.dumps(v)}" for k, v in overrides.items()])
    return run(config, progress=False)


@pytest.fixture(scope="module")
def aligner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_wav2vec2_ctc(tmp_path_factory.mktemp("w2v") / "tiny")


def test_long_recording_without_times_is_aligned_and_split(
    long_recording, aligner_dir, tmp_path, tokenizer
) -> None:
    import webdataset as wds

    d, words = long_recording
    row = {"audio": str(d / "long.wav"), "text": " ".join(words), "id": "long"}
    summary = _prep(tmp_path, tokenizer, [row], aligner_dir)
    assert summary["rejected"] == 0, summary["rejects_by_reason"]
    assert summary["kept_samples"] >= 2
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    kept = []
    for shard in index["shards"]:
        for s in wds.WebDataset(str(tmp_path / "out" / shard["name"]), shardshuffle=False):
            meta = json.loads(s["json"])
            assert re.fullmatch(r"\d+_long_s\d{3}", s["__key__"]) and meta["duration"] <= 12.0
            kept += [w["word"] for w in meta["words"]]
    assert kept == words  # every word, once, in order


def test_long_form_off_keeps_the_old_rejection(
    long_recording, aligner_dir, tmp_path, tokenizer
) -> None:
    d, words = long_recording
    row = {"audio": str(d / "long.wav"), "text": " ".join(words), "id": "long"}
    summary = _prep(tmp_path, tokenizer, [row], aligner_dir, **{"aligner.long_form": False})
    assert summary["rejects_by_reason"] == {"too_long_to_align": 1}


def test_long_transcript_that_does_not_match_is_rejected_with_its_reason(
    long_recording, aligner_dir, tmp_path, tokenizer
) -> None:
    d, words = long_recording
    rows = [
        {"audio": str(d / "long.wav"), "text": " ".join(words * 40), "id": "bad"},
        {"audio": str(d / "long.wav"), "text": " ".join(words), "id": "good"},
    ]
    summary = _prep(tmp_path, tokenizer, rows, aligner_dir)
    assert summary["rejects_by_reason"] == {"too_short": 1}
    assert summary["kept_samples"] >= 2
    example = summary["reject_examples"][0]
    assert example["key"].endswith("bad") and "frames needed" in example["message"]
