"""whisperX forced alignment with the wav2vec2 forward pass batched over utterances.

``whisperx.alignment.align`` runs its CTC model on one segment at a time (its own source says
"TODO: Probably can get some speedup gain with batched inference here"). We pad several
utterances into one forward pass (:mod:`data_prep.align.ctc_batch`), trim each item's logits to
its own frame count, then hand each item's logits to whisperX's own ``align`` in place of the
model, so text cleaning, the wildcard column for unknown characters, the trellis, backtracking,
character merging, sentence splitting and interpolation are whisperX's code, not a copy.

Why through ``align`` and not its internals (``get_trellis``/``backtrack``/``merge_repeats``):
``align`` has no parameter for precomputed emissions, but it only ever *calls* its model, so a
stand-in that returns our logits (:class:`_PrecomputedLogits`) gets exactly the same
post-processing; re-implementing the ~150 lines around the trellis (wildcards, pandas word
grouping, time ratio) would drift from whisperX at its next release. The stand-in receives raw
logits and whisperX applies the same ``log_softmax`` as for its own forward pass.

Every utterance is one whisperX segment from 0 to ``n_samples / SAMPLE_RATE``: the call
:func:`reference_align` makes, which the batched path reproduces word time for word time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from data_prep.align.base import (
    AlignedWord,
    AlignmentError,
    AlignmentFailure,
    AlignRequest,
    AlignResult,
    as_waveform,
    interpolate_missing,
)
from data_prep.align.ctc_aligner import CTCAligner, LongFormBackend
from data_prep.align.ctc_batch import (
    ctc_log_probs,
    ctc_logits,
    default_max_padding,
    frame_hop_samples,
    plan_batches,
)
from data_prep.nltk_data import ensure_punkt_tab
from vrt_finetune.constants import SAMPLE_RATE

MIN_MODEL_SAMPLES = 400
"""Shortest input whisperX sends to a wav2vec2 model (one 25 ms receptive field); it zero-pads
shorter segments to this length."""


@dataclass(frozen=True)
class _Job:
    """One utterance as whisperX sees it."""

    words: list[str]
    pieces: list[list[str]]
    """Per word, the whisperX "words" it becomes (split on spaces; characters for ja/zh)."""
    text: str
    n_samples: int

    @property
    def duration(self) -> float:
        return self.n_samples / SAMPLE_RATE


def _make_job(words: Sequence[str], language: str, n_samples: int) -> _Job:
    from whisperx.alignment import LANGUAGES_WITHOUT_SPACES

    no_spaces = language in LANGUAGES_WITHOUT_SPACES
    # whisperX splits the segment text on " " (every character for ja/zh); a word with inner
    # whitespace becomes several whisperX words, merged back in `_to_aligned_words`.
    pieces = [list("".join(w.split())) if no_spaces else w.split() for w in words]
    flat = [p for ps in pieces for p in ps]
    if not flat:
        raise AlignmentError("nothing_to_align", f"no non-blank word among {list(words)!r}")
    if n_samples == 0:
        raise AlignmentError("empty_audio", "the utterance has no samples")
    return _Job(list(words), pieces, ("" if no_spaces else " ").join(flat), n_samples)


class _PrecomputedLogits:
    """Stands in for the CTC model inside ``whisperx.align``: returns logits computed earlier.

    Args:
        logits: One utterance's CTC logits, shape ``(n_frames, vocab)``.
    """

    def __init__(self, logits: torch.Tensor) -> None:
        self._out = SimpleNamespace(logits=logits[None])

    def __call__(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> Any:
        return self._out


def _run_whisperx(
    job: _Job, model: Any, metadata: dict, audio: torch.Tensor, device: str, interpolate_method: str
) -> list[AlignedWord]:
    import whisperx.alignment as wxa

    segment = {"text": job.text, "start": 0.0, "end": job.duration}
    result = wxa.align([segment], model, metadata, audio, device, interpolate_method)
    return _to_aligned_words(job, result["word_segments"], metadata["dictionary"])


def _to_aligned_words(job: _Job, segments: list[dict], dictionary: dict) -> list[AlignedWord]:
    """whisperX word segments → one :class:`AlignedWord` per input word."""
    flat = [p for ps in job.pieces for p in ps]
    if not segments:
        raise AlignmentError(
            "backtrack_failed",
            f"whisperX found no path for {job.text!r} in {job.duration:.2f} s (too little audio?)",
        )
    got = [s["word"] for s in segments]
    if got != flat:
        raise AlignmentError("word_mismatch", f"whisperX returned {got!r} for {flat!r}")
    placed: list[AlignedWord | None] = []
    k = 0
    for word, pieces in zip(job.words, job.pieces, strict=True):
        segs = segments[k : k + len(pieces)]
        k += len(pieces)
        if not segs or any("start" not in s or "end" not in s for s in segs):
            placed.append(None)
            continue
        scores = [float(s["score"]) for s in segs if "score" in s]
        # whisperX times characters outside the vocabulary with a wildcard column (best
        # non-blank score per frame): placed, but not from the word's own sounds.
        wildcard_only = not any(c.lower() in dictionary for c in word)
        placed.append(
            AlignedWord(
                word,
                float(min(s["start"] for s in segs)),
                float(max(s["end"] for s in segs)),
                float(np.mean(scores)) if scores else 0.0,
                flagged=wildcard_only,
            )
        )
    return interpolate_missing(job.words, placed, job.duration)


def emissions_to_words(
    logits: torch.Tensor,
    words: Sequence[str],
    language: str,
    metadata: dict,
    n_samples: int,
    interpolate_method: str = "nearest",
) -> list[AlignedWord]:
    """Word times from one utterance's CTC output, through whisperX's own alignment code.

    Args:
        logits: CTC logits (or log-probabilities) of the utterance, ``(n_frames, vocab)``,
            ``n_frames`` being what the model gives for ``n_samples`` samples.
        words: Spoken words, in order.
        language: Language code; whisperX treats ``ja``/``zh`` characters as words.
        metadata: whisperX align-model metadata (``dictionary``, ``language``, ``type``).
        n_samples: Length of the utterance in samples (whisperX's segment end).
        interpolate_method: whisperX's method for words without aligned characters.

    Returns:
        One :class:`AlignedWord` per word. whisperX's time per frame is
        ``duration / n_frames`` (about 20 ms), its times are rounded to the millisecond.

    Raises:
        AlignmentError: the words do not fit in the frames, or whisperX's words differ.
    """
    job = _make_job(words, language, n_samples)
    meta = {**metadata, "language": language, "type": "huggingface"}  # stand-in answers .logits
    audio = torch.zeros((1, n_samples))  # only its length is read: the model is a stand-in
    return _run_whisperx(job, _PrecomputedLogits(logits), meta, audio, "cpu", interpolate_method)


def reference_align(
    model: nn.Module, metadata: dict, audio: np.ndarray, words: Sequence[str], device: str = "cpu"
) -> list[dict]:
    """Plain ``whisperx.align`` on one utterance: the baseline the batched path must equal.

    Returns:
        whisperX's ``word_segments`` (dicts with ``word``, ``start``, ``end``, ``score``).
    """
    import whisperx.alignment as wxa

    job = _make_job(words, metadata["language"], len(audio))
    segment = {"text": job.text, "start": 0.0, "end": job.duration}
    return wxa.align([segment], model, metadata, as_waveform(audio), device)["word_segments"]


class WhisperXAligner(CTCAligner):
    """whisperX alignment, batched through its wav2vec2 model.

    Args:
        language: Language to load a model for now (fail early); others load on first use.
        model: Hugging Face model name, local ``save_pretrained`` directory or torchaudio
            bundle name; ``None``: whisperX's default model for each language.
        model_dir: Download/cache directory passed to ``whisperx.load_align_model``.
        device: Torch device of the model.
        batch_size: Most utterances per forward pass.
        max_batch_seconds: Padded audio per forward pass (``batch_size * longest``), bounding
            memory.
        max_padding: Largest share of an utterance's row that may be padding; ``None``: 5 % on
            CPU (batching does not pay there), 50 % on GPU (see ``default_max_padding``).
        interpolate_method: whisperX's interpolation for words without aligned characters.
        model_cache_only: Never download (``local_files_only``).
    """

    name = "whisperx"

    def __init__(
        self,
        language: str | None = None,
        model: str | None = None,
        *,
        model_dir: str | None = None,
        device: str = "cpu",
        batch_size: int = 8,
        max_batch_seconds: float = 120.0,
        max_padding: float | None = None,
        interpolate_method: str = "nearest",
        model_cache_only: bool = False,
    ) -> None:
        self.model_name = model
        self.model_dir = model_dir
        self.device = device
        self.batch_size = batch_size
        self.max_batch_samples = int(max_batch_seconds * SAMPLE_RATE)
        self.max_padding = default_max_padding(device) if max_padding is None else max_padding
        self.interpolate_method = interpolate_method
        self.model_cache_only = model_cache_only
        self._models: dict[str, tuple[nn.Module, dict]] = {}
        # A user-chosen model serves every language (only whisperX's metadata differs); the
        # defaults are one model per language.
        self._one_model = model is not None
        if language is not None:
            self.model_for(language)

    @classmethod
    def from_loaded(cls, model: nn.Module, metadata: dict, **kwargs: Any) -> WhisperXAligner:
        """Wrap a model already returned by ``whisperx.load_align_model`` (or built alike).

        Its metadata's language is replaced per utterance; ``model`` serves every language.
        """
        aligner = cls(**kwargs)
        aligner._one_model = True
        aligner._register(metadata["language"], model.eval(), metadata)
        return aligner

    def _register(self, language: str, model: nn.Module, metadata: dict) -> None:
        from whisperx.utils import PUNKT_LANGUAGES

        ensure_punkt_tab(PUNKT_LANGUAGES.get(language, "english"))  # whisperX's fallback
        self._models[language] = (model, {**metadata, "language": language})

    def model_for(self, language: str) -> tuple[nn.Module, dict]:
        """The whisperX model and metadata that align ``language`` (loaded on first use)."""
        if language not in self._models:
            if self._one_model and self._models:
                model, metadata = next(iter(self._models.values()))
            else:
                from whisperx.alignment import load_align_model

                model, metadata = load_align_model(
                    language,
                    self.device,
                    model_name=self.model_name,
                    model_dir=self.model_dir,
                    model_cache_only=self.model_cache_only,
                )
            self._register(language, model.eval(), metadata)
        return self._models[language]

    def frame_log_probs(self, waves: Sequence[np.ndarray], language: str) -> list[torch.Tensor]:
        """CTC log-probabilities of waveform windows, computed as for a whole utterance.

        Long-form alignment (:mod:`data_prep.align.longform`) calls this on overlapping windows
        of a long recording: raw samples, one padded forward pass for the batch.

        Args:
            waves: Mono windows at ``SAMPLE_RATE``, each at least ``MIN_MODEL_SAMPLES`` long,
                shape ``(n_samples_i,)``.
            language: Selects the model (see :meth:`model_for`).

        Returns:
            Per window, float32 CPU log-probabilities ``(n_frames_i, vocab)``.
        """
        model, metadata = self.model_for(language)
        x = [torch.from_numpy(as_waveform(w)) for w in waves]
        return ctc_log_probs(model, metadata["type"], x, self.device)

    def long_form_backend(self, language: str) -> LongFormBackend:
        """whisperX's model, dictionary and trellis for long-form alignment of ``language``."""
        return _WhisperXLongForm(self, language)

    def align_batch(self, requests: Sequence[AlignRequest]) -> list[AlignResult]:
        """Align utterances, several per wav2vec2 forward pass (see :meth:`Aligner.align_batch`)."""
        results: list[AlignResult | None] = [None] * len(requests)
        by_language: dict[str, list[tuple[int, _Job, torch.Tensor]]] = {}
        for i, r in enumerate(requests):
            wave = as_waveform(r.audio)
            # whisperX's own sample range for a segment ending at n / SAMPLE_RATE.
            wave = wave[: int(len(wave) / SAMPLE_RATE * SAMPLE_RATE)]
            try:
                job = _make_job(r.words, r.language, len(r.audio))
            except AlignmentError as err:
                results[i] = err.failure
                continue
            by_language.setdefault(r.language, []).append((i, job, torch.from_numpy(wave)))
        for language, jobs in by_language.items():
            try:
                model, metadata = self.model_for(language)
            except (ValueError, OSError) as err:
                for i, _, _ in jobs:
                    results[i] = AlignmentFailure("no_align_model", f"{language}: {err}")
                continue
            self._align_jobs(model, metadata, jobs, results)
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def _align_jobs(
        self,
        model: nn.Module,
        metadata: dict,
        jobs: list[tuple[int, _Job, torch.Tensor]],
        results: list[AlignResult | None],
    ) -> None:
        for i, job, wave in jobs:
            if len(wave) < MIN_MODEL_SAMPLES:
                # whisperX pads these and, for torchaudio models, masks by the true length:
                # rare enough to let whisperX run the model itself.
                results[i] = self._finish(job, model, metadata, wave[None], self.device)
        jobs = [j for j in jobs if len(j[2]) >= MIN_MODEL_SAMPLES]
        stand_in_meta = {**metadata, "type": "huggingface"}  # the stand-in answers `.logits`
        lengths = [len(wave) for _, _, wave in jobs]
        for batch in plan_batches(
            lengths, self.max_batch_samples, self.batch_size, self.max_padding
        ):
            logits = ctc_logits(model, metadata["type"], [jobs[b][2] for b in batch], self.device)
            for b, item_logits in zip(batch, logits, strict=True):
                i, job, _ = jobs[b]
                stand_in = _PrecomputedLogits(item_logits)
                audio = torch.zeros((1, job.n_samples))  # only its length is read
                results[i] = self._finish(job, stand_in, stand_in_meta, audio, "cpu")

    def _finish(
        self, job: _Job, model: Any, metadata: dict, audio: torch.Tensor, device: str
    ) -> AlignResult:
        try:
            return _run_whisperx(job, model, metadata, audio, device, self.interpolate_method)
        except AlignmentError as err:
            return err.failure


class _WhisperXLongForm(LongFormBackend):
    """What long-form alignment needs of a :class:`WhisperXAligner` for one language."""

    def __init__(self, aligner: WhisperXAligner, language: str) -> None:
        super().__init__(aligner, language)
        self.interpolate_method = aligner.interpolate_method
        try:
            self.model, self.metadata = aligner.model_for(language)
        except (ValueError, OSError) as err:
            raise AlignmentError("no_align_model", f"{language}: {err}") from err
        self.dictionary = self.metadata["dictionary"]
        # whisperX's own rule for its blank
        self.blank = next((i for c, i in self.dictionary.items() if c in ("[pad]", "<pad>")), 0)
        self.hop = frame_hop_samples(self.model, self.metadata["type"])

    def word_tokens(self, words: Sequence[str]) -> list[list[int]]:
        # whisperX lower-cases each character and aligns those in the dictionary; the others
        # get its wildcard column in `align_piece` but no token here, nor does "|".
        d = self.dictionary
        ids = [[d[c] for c in w.lower() if c in d and c not in " |"] for w in words]
        return [[i for i in w if i != self.blank] for w in ids]

    def align_piece(self, log_probs: torch.Tensor, words: Sequence[str]) -> list[AlignedWord]:
        # n_samples = frames * hop: whisperX's time per frame (duration / frames) is one hop.
        return emissions_to_words(
            log_probs,
            words,
            self.language,
            self.metadata,
            len(log_probs) * self.hop,
            self.interpolate_method,
        )
