"""Test factories for the aligners: random CTC models saved like real ones, oracle emissions.

Nothing can be downloaded here, so tests and the benchmark build randomly initialised models
with the real classes (``Wav2Vec2ForCTC`` + ``Wav2Vec2Processor`` written with
``save_pretrained``; torchaudio ``wav2vec2_model``) and exercise every code path; their timings
mean nothing. Oracle emissions have a known answer instead: :func:`oracle_logits` makes a CTC
output whose best path puts each word exactly where we say. :func:`reference_align` and
:func:`reference_emissions_align` run whisperX's own ``align``: what our whisperX backend must
equal (tests and the benchmark only; the backend never calls it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from vrt_finetune.constants import SAMPLE_RATE, SAMPLES_PER_ENCODER_FRAME

CHAR_VOCAB: tuple[str, ...] = ("<pad>", "|", *"abcdefghijklmnopqrstuvwxyz'")
"""Character vocabulary of the test models: CTC blank ``<pad>`` (id 0), word delimiter ``|``."""

MMS_LABELS: tuple[str, ...] = ("-", *"aientoutsrmkldghybpwcvjzf'qx")
"""Labels of torchaudio's ``MMS_FA`` without the star token (blank ``-`` first)."""


def save_random_wav2vec2_ctc(
    directory: str | Path,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 64,
    conv_dim: int = 32,
    feat_extract_norm: str = "group",
    head_gain: float = 30.0,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised ``Wav2Vec2ForCTC`` and its processor, as a hub model would be.

    The conv stack keeps wav2vec2's kernels and strides (one frame per 320 samples); widths and
    depths are the arguments (``hidden_size=768, num_layers=12, num_heads=12,
    intermediate_size=3072, conv_dim=512`` is wav2vec2-base).

    Args:
        directory: Where to write (created).
        feat_extract_norm: ``"group"`` (base models) or ``"layer"`` (large/XLS-R models).
        head_gain: Factor on the CTC head's initial weights. Freshly initialised logits vary by
            about 0.1, so every path scores nearly alike; a gain of 30 makes the posteriors
            depend on the audio the way a trained model's do.
        seed: Seed of the weights.

    Returns:
        ``directory``, loadable with ``from_pretrained`` / ``whisperx.load_align_model``.
    """
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.json"
    vocab_file.write_text(json.dumps({c: i for i, c in enumerate(CHAR_VOCAB)}))
    tokenizer = Wav2Vec2CTCTokenizer(
        str(vocab_file), unk_token="<pad>", pad_token="<pad>", word_delimiter_token="|"
    )
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLE_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=feat_extract_norm == "layer",
    )
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(directory)
    config = Wav2Vec2Config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        conv_dim=(conv_dim,) * 7,
        num_conv_pos_embeddings=16 if hidden_size < 256 else 128,
        num_conv_pos_embedding_groups=min(16, hidden_size // 16),
        feat_extract_norm=feat_extract_norm,
        do_stable_layer_norm=feat_extract_norm == "layer",
    )
    torch.manual_seed(seed)
    model = Wav2Vec2ForCTC(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(head_gain)
    model.save_pretrained(directory)
    return directory


def random_torchaudio_wav2vec2(
    n_labels: int, *, extractor_mode: str = "layer_norm", dim: int = 32, seed: int = 0
) -> nn.Module:
    """A tiny randomly initialised torchaudio ``Wav2Vec2Model`` with a CTC head.

    ``extractor_mode="layer_norm"`` is MMS_FA's feature encoder, ``"group_norm"`` the one of
    ``WAV2VEC2_ASR_BASE_960H`` (whisperX's English default).
    """
    from torchaudio.models import wav2vec2_model

    torch.manual_seed(seed)
    strides = [(dim, 10, 5)] + [(dim, 3, 2)] * 4 + [(dim, 2, 2)] * 2
    return wav2vec2_model(
        extractor_mode=extractor_mode,
        extractor_conv_layer_config=strides,
        extractor_conv_bias=extractor_mode == "layer_norm",
        encoder_embed_dim=dim,
        encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=16,
        encoder_pos_conv_groups=2,
        encoder_num_layers=2,
        encoder_num_heads=2,
        encoder_attention_dropout=0.0,
        encoder_ff_interm_features=2 * dim,
        encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0,
        encoder_layer_norm_first=extractor_mode == "layer_norm",
        encoder_layer_drop=0.0,
        aux_num_out=n_labels,
    ).eval()


def frames_for(seconds: float) -> int:
    """CTC frames a wav2vec2 model gives for ``seconds`` of audio (receptive field 400)."""
    n = round(seconds * SAMPLE_RATE)
    return max(0, (n - 400) // SAMPLES_PER_ENCODER_FRAME + 1)


def oracle_logits(
    spans: Sequence[tuple[str, float, float]],
    n_frames: int,
    dictionary: Mapping[str, int],
    *,
    blank: int,
    delimiter: str | None = None,
    peak: float = 12.0,
) -> torch.Tensor:
    """CTC logits whose best path places each word exactly on its span (spiky, like real CTC).

    Word ``w`` on ``[start, end)`` covers frames ``[f0, f1)`` with ``f = round(t / 20 ms)``:
    its first character spikes at ``f0``, its last at ``f1 - 1``, the others in between, and
    the ``delimiter`` (if given) spikes at ``f1``; every other frame is blank. Both whisperX's
    one-frame-per-token trellis and standard CTC then put the word on ``[f0, f1)``.

    Args:
        spans: ``(word, start_s, end_s)``, in order, with at least one frame between words and
            at least as many frames as characters.
        n_frames: Frames of the utterance.
        dictionary: Character → logit column.
        blank: Column of the CTC blank.
        delimiter: Word delimiter character (``"|"``) or ``None``.
        peak: Logit of the winning column per frame (others 0).

    Returns:
        Logits, shape ``(n_frames, len(columns))``.
    """
    frame_s = SAMPLES_PER_ENCODER_FRAME / SAMPLE_RATE
    logits = torch.zeros((n_frames, max(dictionary.values()) + 1))
    logits[:, blank] = peak
    for word, start, end in spans:
        f0, f1 = round(start / frame_s), round(end / frame_s)
        if f1 - f0 < len(word) or f1 > n_frames:
            raise ValueError(f"{word!r} does not fit in frames [{f0}, {f1}) of {n_frames}")
        at = np.linspace(f0, f1 - 1, len(word)).round().astype(int)
        for char, f in zip(word, at, strict=True):
            logits[f, blank] = 0.0
            logits[f, dictionary[char]] = peak
        if delimiter is not None and f1 < n_frames:
            logits[f1, blank] = 0.0
            logits[f1, dictionary[delimiter]] = peak
    return logits


ORACLE_WORDS: tuple[str, ...] = tuple(
    "the quick brown fox jumps over an lazy dog while seven birds sing in tall green trees".split()  # noqa: SIM905
)
"""Words of :func:`oracle_spans` (two letters or more: :func:`oracle_logits` marks a word's end
by its last letter's spike, which a one-letter word does not have)."""


def oracle_spans(
    seconds: float, seed: int = 0, start: float = 0.5, words: Sequence[str] = ORACLE_WORDS
) -> list[tuple[str, float, float]]:
    """A long transcript with word times that :func:`oracle_logits` can spell exactly.

    Each word gets two to seven frames per letter (a letter repeated in a row, "ee", always has
    a blank frame between its spikes) and pauses of 40-140 ms, one in ten of up to 0.8 s.

    Args:
        seconds: Length of the recording; the last word ends at least 0.1 s before it.
        seed: The same seed gives the same transcript.
        start: Time of the first word.
        words: Vocabulary drawn from.

    Returns:
        ``(word, start_s, end_s)`` in order, times on the 20 ms frame grid.
    """
    frame_s = SAMPLES_PER_ENCODER_FRAME / SAMPLE_RATE
    rng = np.random.default_rng(seed)
    spans: list[tuple[str, float, float]] = []
    f = round(start / frame_s)
    while True:
        word = words[int(rng.integers(len(words)))]
        n = 2 * len(word) + int(rng.integers(0, 10))
        if (f + n) * frame_s + 0.1 > seconds:
            return spans
        spans.append((word, round(f * frame_s, 2), round((f + n) * frame_s, 2)))
        f += n + int(rng.integers(2, 40 if rng.random() < 0.1 else 8))


def noise_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-band noise with a syllable-rate envelope, ``(n_samples,)`` float32 at 16 kHz."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 2 * np.pi))
    return (0.1 * envelope * rng.standard_normal(n)).astype(np.float32)


# --- whisperX's own alignment: the reference our whisperX backend must equal --------------


class _PrecomputedLogits:
    """Stands in for the CTC model inside ``whisperx.align``: returns logits computed earlier.

    ``align`` has no parameter for emissions, but it only ever calls its model; its
    post-processing (``log_softmax``, wildcard, trellis, backtrack, pandas word grouping) then
    runs unchanged on them.
    """

    def __init__(self, logits: torch.Tensor) -> None:
        self._out = SimpleNamespace(logits=logits[None])

    def __call__(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> Any:
        return self._out


def _segment(words: Sequence[str], language: str, n_samples: int) -> dict:
    """The one whisperX segment our backend makes of an utterance (0 to its end)."""
    from whisperx.alignment import LANGUAGES_WITHOUT_SPACES

    no_spaces = language in LANGUAGES_WITHOUT_SPACES
    flat = [p for w in words for p in (list("".join(w.split())) if no_spaces else w.split())]
    text = ("" if no_spaces else " ").join(flat)
    return {"text": text, "start": 0.0, "end": n_samples / SAMPLE_RATE}


def reference_align(
    model: nn.Module, metadata: dict, audio: np.ndarray, words: Sequence[str], device: str = "cpu"
) -> list[dict]:
    """Plain ``whisperx.align`` on one utterance, its model included.

    Returns:
        whisperX's ``word_segments`` (dicts with ``word`` and, where it has them, ``start``,
        ``end``, ``score``).
    """
    import whisperx.alignment as wxa

    segment = _segment(words, metadata["language"], len(audio))
    wave = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return wxa.align([segment], model, metadata, wave, device)["word_segments"]


def reference_emissions_align(
    logits: torch.Tensor,
    words: Sequence[str],
    metadata: dict,
    n_samples: int,
    interpolate_method: str = "nearest",
) -> list[dict]:
    """``whisperx.align``'s post-processing of one utterance's CTC output ``(n_frames, vocab)``.

    Returns:
        whisperX's ``word_segments``, as :func:`reference_align` with these logits.
    """
    import whisperx.alignment as wxa

    segment = _segment(words, metadata["language"], n_samples)
    meta = {**metadata, "type": "huggingface"}  # the stand-in answers `.logits`
    audio = torch.zeros((1, n_samples))  # only its length is read
    stand_in = _PrecomputedLogits(logits.cpu())
    return wxa.align([segment], stand_in, meta, audio, "cpu", interpolate_method)["word_segments"]
