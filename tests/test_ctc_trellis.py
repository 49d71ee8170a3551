"""Batched CTC paths and whisperX word times equal the libraries' own, decision for decision.

References (here only): whisperX's ``get_trellis``/``backtrack``/``merge_repeats`` and
``whisperx.align``; torchaudio's ``forced_align``/``merge_tokens``. Emissions are synthetic
(random, uniform, quantised: ties everywhere) or espeak-ng speech through a random wav2vec2 of
base size, the benchmark's model (``bench/bench_align.py``).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from data_prep.align.ctc_trellis import WILDCARD, ctc_paths, whisperx_paths
from data_prep.espeak_worker import espeak_available

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KINDS = ("random", "uniform", "quantised", "peaked", "impossible")
"""Emissions: N(0, 3) logits; all equal (every decision a tie); integer logits in [0, 3) (many
ties); N(0, 30) (near one-hot); random with -inf log-probabilities."""


def _logits(kind: str, n_frames: int, vocab: int, rng: np.random.Generator) -> torch.Tensor:
    if kind == "uniform":
        return torch.zeros((n_frames, vocab))
    if kind == "quantised":
        return torch.from_numpy(rng.integers(0, 3, (n_frames, vocab))).float()
    x = torch.from_numpy(rng.standard_normal((n_frames, vocab))).float()
    if kind == "impossible":
        x[torch.from_numpy(rng.random((n_frames, vocab)) < 0.2)] = -torch.inf
        x[:, 0] = 0.0  # keep every frame finite somewhere
    return x * (30.0 if kind == "peaked" else 3.0)


def _batch(kind: str, seed: int, blank: int, wildcard: bool, vocab: int = 7):
    """Utterances of 1-60 frames with 1-40 tokens: some need more frames than they have, some
    exactly as many (a token per frame), tokens repeat."""
    rng = np.random.default_rng(seed)
    log_probs, tokens = [], []
    labels = [c for c in range(vocab) if c != blank]
    for k in range(12):
        n_frames = int(rng.integers(1, 60))
        n_tokens = n_frames if k == 0 else n_frames + 1 if k == 1 else int(rng.integers(1, 40))
        tok = [int(rng.choice(labels)) for _ in range(n_tokens)]
        if k == 2:
            tok = [tok[0]] * n_tokens  # one character repeated
        if wildcard:
            tok = [WILDCARD if rng.random() < 0.15 else t for t in tok]
        log_probs.append(torch.log_softmax(_logits(kind, n_frames, vocab, rng), dim=-1))
        tokens.append(tok)
    return log_probs, tokens


def _whisperx_reference(log_probs: torch.Tensor, tokens: list[int], blank: int):
    """whisperX's own functions on one utterance, wildcard column as ``whisperx.align`` adds it."""
    import whisperx.alignment as wxa

    emission = log_probs
    if WILDCARD in tokens:
        non_blank = torch.ones(emission.size(1), dtype=torch.bool)
        non_blank[blank] = False
        emission = torch.cat([emission, emission[:, non_blank].max(dim=1).values[:, None]], 1)
        tokens = [emission.size(1) - 1 if t == WILDCARD else t for t in tokens]
    trellis = wxa.get_trellis(emission, tokens, blank)
    path = wxa.backtrack(trellis, emission, tokens, blank)
    if path is None:
        return None
    return [(s.start, s.end, s.score) for s in wxa.merge_repeats(path, "x" * len(tokens))]


@pytest.mark.parametrize("kind", KINDS)
def test_whisperx_paths_equal_whisperx_backtrack(kind: str) -> None:
    n_found = 0
    for seed, blank in enumerate((0, 3)):
        log_probs, tokens = _batch(kind, seed, blank, wildcard=seed == 1)
        paths = whisperx_paths(log_probs, tokens, blank)
        for lp, tok, got in zip(log_probs, tokens, paths, strict=True):
            ref = _whisperx_reference(lp, tok, blank)
            if ref is None:
                assert got is None
                continue
            assert got is not None
            n_found += 1
            # exact: frames and whisperX's float64 mean of float32 posteriors
            assert (
                list(zip(got.start.tolist(), got.end.tolist(), got.score.tolist(), strict=True))
                == ref
            )
    assert n_found >= 8


@pytest.mark.parametrize("kind", KINDS)
def test_ctc_paths_equal_forced_align(kind: str) -> None:
    import torchaudio.functional as taf

    n_found = 0
    for seed, blank in enumerate((0, 4)):
        log_probs, tokens = _batch(kind, 10 + seed, blank, wildcard=False)
        paths = ctc_paths(log_probs, tokens, blank)
        for lp, tok, got in zip(log_probs, tokens, paths, strict=True):
            if len(lp) < len(tok) + sum(a == b for a, b in itertools.pairwise(tok)):
                assert got is None  # forced_align refuses these
                continue
            # no finite path (forced_align returns garbage then): CTC's loss is infinite
            loss = torch.nn.functional.ctc_loss(
                lp[:, None], torch.tensor([tok]), [len(lp)], [len(tok)], blank, "sum"
            )
            if not torch.isfinite(loss):
                assert got is None
                continue
            path, scores = taf.forced_align(lp[None], torch.tensor([tok]), blank=blank)
            spans = taf.merge_tokens(path[0], scores[0].exp(), blank=blank)
            assert got is not None
            n_found += 1
            assert list(zip(got.start.tolist(), got.end.tolist(), strict=True)) == [
                (s.start, s.end) for s in spans
            ]
            # merge_tokens averages in float32, we in float64
            np.testing.assert_allclose(got.score, [s.score for s in spans], rtol=1e-6)
    assert n_found >= (4 if kind == "impossible" else 8)


def test_plan_trellis_batches_bounds_padded_cells() -> None:
    from data_prep.align.ctc_trellis import plan_trellis_batches

    sizes = [(700, 200), (100, 30), (650, 260), (720, 100), (5000, 3000), (90, 40)]
    batches = plan_trellis_batches(sizes, max_cells=400_000)
    assert sorted(i for b in batches for i in b) == list(range(len(sizes)))
    assert [4] in batches  # larger than the budget: alone
    for b in batches:
        frames = [sizes[i][0] for i in b]
        assert frames == sorted(frames, reverse=True)
        padded = len(b) * frames[0] * max(sizes[i][1] for i in b)
        assert len(b) == 1 or padded <= 400_000


@pytest.mark.gpu
def test_paths_on_cuda_equal_cpu() -> None:
    log_probs, tokens = _batch("quantised", 20, 0, wildcard=True)
    on_gpu = [lp.cuda() for lp in log_probs]
    pairs = zip(
        whisperx_paths(log_probs, tokens, 0), whisperx_paths(on_gpu, tokens, 0), strict=True
    )
    for cpu, gpu in pairs:
        assert (cpu is None) == (gpu is None)
        if cpu is not None:
            assert cpu.start.tolist() == gpu.start.tolist() and cpu.end.tolist() == gpu.end.tolist()
            assert cpu.score.tolist() == gpu.score.tolist()
    plain = [[t if t != WILDCARD else 1 for t in tok] for tok in tokens]
    for cpu, gpu in zip(ctc_paths(log_probs, plain, 0), ctc_paths(on_gpu, plain, 0), strict=True):
        assert (cpu is None) == (gpu is None)
        if cpu is not None:
            assert cpu.start.tolist() == gpu.start.tolist()


def test_round_like_python() -> None:
    from data_prep.align.whisperx_words import round_like_python

    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.random(20_000) * 30,
            np.arange(0, 4001) / 2000,  # every half of the third decimal, and its neighbours
            np.nextafter(np.arange(0, 4001) / 2000, 1.0),
            np.nextafter(np.arange(0, 4001) / 2000, 0.0),
            [2.675, 0.0625, 1e-9, np.nan],
        ]
    )
    got = round_like_python(values)
    want = np.array([round(float(v), 3) for v in values])
    assert np.array_equal(got, want, equal_nan=True)
    assert not np.array_equal(np.round(values, 3), want, equal_nan=True)  # why it exists


# --- whisperx.align on espeak-ng speech through a base-size random wav2vec2 ------------------

SENTENCES = (
    "the committee will meet at noon tomorrow",
    "a bookkeeper needs three good pencils",
    "please call stella and ask her to bring these things",
    "we saw the llama sleep by the river",
)


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory):
    """The benchmark's model: wav2vec2-base sizes, random weights, loaded by whisperX."""
    import whisperx.alignment as wxa

    from data_prep.align.testing import save_random_wav2vec2_ctc

    path = save_random_wav2vec2_ctc(
        Path(tmp_path_factory.mktemp("w2v-base")) / "m",
        hidden_size=768,
        num_layers=12,
        num_heads=12,
        intermediate_size=3072,
        conv_dim=512,
    )
    return wxa.load_align_model("en", "cpu", model_name=str(path))


@pytest.fixture(scope="module")
def speech(base_model):
    """Per sentence: espeak-ng audio, its words and the model's logits ``(n_frames, vocab)``."""
    if not espeak_available():
        pytest.skip("libespeak-ng not installed")
    from data_prep.align.ctc_batch import ctc_logits
    from data_prep.synth import synthesize

    model, metadata = base_model
    out = []
    for text in SENTENCES:
        audio = synthesize(text).audio
        logits = ctc_logits(model, metadata["type"], [torch.from_numpy(audio)], "cpu")[0]
        out.append((audio, text.split(), logits))
    return out


def _assert_equal_to_whisperx(logits, words, metadata, n_samples, method="nearest") -> None:
    """Our word segments == ``whisperx.align``'s, key for key and bit for bit."""
    from data_prep.align.base import AlignmentFailure
    from data_prep.align.testing import reference_emissions_align
    from data_prep.align.whisperx_emissions import whisperx_word_segments

    ours = whisperx_word_segments(logits, words, metadata, n_samples, method)
    for lg, w, n, got in zip(logits, words, n_samples, ours, strict=True):
        ref = reference_emissions_align(lg, w, metadata, n, method)
        if isinstance(got, AlignmentFailure):
            assert ref == [], got
        else:
            assert got == ref


def test_speech_word_times_equal_whisperx_align(speech, base_model) -> None:
    _, metadata = base_model
    logits = [lg for _, _, lg in speech]
    words = [w for _, w, _ in speech]
    n_samples = [len(a) for a, _, _ in speech]
    _assert_equal_to_whisperx(logits, words, metadata, n_samples)
    # ties: logits rounded to integers
    _assert_equal_to_whisperx([lg.round() for lg in logits], words, metadata, n_samples)


def test_aligner_equals_whisperx_align_with_its_model(speech, base_model) -> None:
    """End to end: our forward passes and trellis vs plain ``whisperx.align``."""
    from data_prep.align.base import AlignRequest
    from data_prep.align.testing import reference_align
    from data_prep.align.whisperx_backend import WhisperXAligner

    model, metadata = base_model
    # max_padding=0: unbatched forward passes, so the logits are whisperX's to the bit
    aligner = WhisperXAligner.from_loaded(model, metadata, max_padding=0.0)
    audio, words, _ = speech[0]
    got = aligner.align_batch([AlignRequest(audio, words, "en")])[0]
    ref = reference_align(model, metadata, audio, words)
    assert [(w.word, w.start, w.end, w.score) for w in got] == [
        (r["word"], r["start"], r["end"], r["score"]) for r in ref
    ]


def test_hard_cases_equal_whisperx_align(speech, base_model) -> None:
    _, metadata = base_model
    audio, _, logits = speech[1]
    n = len(audio)
    hop = n / len(logits)
    cases = [
        # repeated characters, doubled letters across word boundaries
        (logits, ["aaa", "bookkeeper", "llama", "committee", "sees", "essays"], n),
        # a word far longer than its audio: squeezed into the frames left, or no path
        (logits[:60], ["a", "pneumonoultramicroscopicsilicovolcanoconiosis"], round(60 * hop)),
        (logits[:20], ["pneumonoultramicroscopicsilicovolcanoconiosis"], round(20 * hop)),
        # characters outside the dictionary: wildcard; "İ" lower-cases to two characters
        (logits, ["42", "wörld", "İstanbul", "naïve", "c'est", "x|y", "日本"], n),
        # one frame per token: exactly as many frames as characters and delimiters
        (logits[:11], ["ab", "cd", "efgh"], round(11 * hop)),
        (logits[:10], ["ab", "cd", "efgh"], round(10 * hop)),
    ]
    for lg, words, n_samples in cases:
        _assert_equal_to_whisperx([lg], [words], metadata, [n_samples])
    # ja: every character is a word
    _assert_equal_to_whisperx([logits], [["ab", "cd"]], {**metadata, "language": "ja"}, [n])


@pytest.mark.parametrize("method", ["nearest", "linear", "ignore"])
def test_words_without_aligned_characters_equal_whisperx(speech, base_model, method) -> None:
    """A word of "|" with a dictionary without "|": whisperX interpolates it per sentence."""
    _, metadata = base_model
    no_bar = {**metadata, "dictionary": {k: v for k, v in metadata["dictionary"].items()}}
    del no_bar["dictionary"]["|"]
    audio, _, logits = speech[2]
    words = ["||", "we", "|", "went", "home.", "|", "then", "||", "we", "|", "slept", "well", "|"]
    _assert_equal_to_whisperx([logits], [words], no_bar, [len(audio)], method)
