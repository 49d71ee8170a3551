"""whisperX forced alignment, batched through its wav2vec2 model and through its trellis.

``whisperx.alignment.align`` runs its CTC model on one segment at a time (its own source says
"TODO: Probably can get some speedup gain with batched inference here"), then finds each
segment's path with Python loops over frames and groups characters into words with pandas.
Here several utterances share one padded forward pass (:mod:`data_prep.align.ctc_batch`), the
emissions stay on the model's device, and all utterances of a call are aligned in one
vectorised trellis there (:mod:`data_prep.align.whisperx_emissions`), reproducing whisperX's
arithmetic: every word's start, end and score equals what ``whisperx.align`` returns for the
same emissions. whisperX remains the source of the model loading, the dictionary and the
language conventions.

Every utterance is one whisperX segment from 0 to ``n_samples / SAMPLE_RATE``, the call
:func:`data_prep.align.testing.reference_align` makes with plain ``whisperx.align``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from data_prep.align.base import (
    AlignmentError,
    AlignmentFailure,
    AlignRequest,
    AlignResult,
    as_waveform,
)
from data_prep.align.ctc_aligner import CTCAligner, LongFormBackend
from data_prep.align.ctc_batch import (
    ModelKind,
    ctc_log_probs,
    ctc_logits,
    default_max_padding,
    frame_hop_samples,
    plan_batches,
)
from data_prep.align.whisperx_emissions import (
    WhisperXJob,
    emissions_to_words,
    job_word_times,
    make_job,
    to_aligned_words,
    whisperx_blank,
)
from data_prep.align.whisperx_words import INTERPOLATE_METHODS
from data_prep.nltk_data import ensure_punkt_tab
from vrt_finetune.constants import SAMPLE_RATE

MIN_MODEL_SAMPLES = 400
"""Shortest input whisperX sends to a wav2vec2 model (one 25 ms receptive field); it zero-pads
shorter segments to this length."""


def _lone_logits(
    model: nn.Module, kind: ModelKind, wave: torch.Tensor, device: str | torch.device
) -> torch.Tensor:
    """whisperX's forward pass of a segment shorter than the receptive field: zero-padded to
    ``MIN_MODEL_SAMPLES``, a torchaudio model told its true length. ``(n_frames, vocab)``."""
    x = nn.functional.pad(wave[None], (0, MIN_MODEL_SAMPLES - len(wave))).to(device)
    with torch.inference_mode():
        if kind == "torchaudio":
            return model(x, lengths=torch.as_tensor([len(wave)], device=device))[0][0].float()
        return model(x).logits[0].float()


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
        if interpolate_method not in INTERPOLATE_METHODS:
            raise ValueError(f"interpolate_method must be one of {INTERPOLATE_METHODS}")
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
        """Align utterances, several per wav2vec2 forward pass and per trellis (see
        :meth:`Aligner.align_batch`)."""
        results: list[AlignResult | None] = [None] * len(requests)
        by_language: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            by_language.setdefault(r.language, []).append(i)
        for language, indices in by_language.items():
            try:
                model, metadata = self.model_for(language)
            except (ValueError, OSError) as err:
                for i in indices:
                    results[i] = AlignmentFailure("no_align_model", f"{language}: {err}")
                continue
            jobs: list[tuple[int, WhisperXJob, torch.Tensor]] = []
            for i in indices:
                r = requests[i]
                wave = as_waveform(r.audio)
                # whisperX's own sample range for a segment ending at n / SAMPLE_RATE.
                wave = wave[: int(len(wave) / SAMPLE_RATE * SAMPLE_RATE)]
                try:
                    job = make_job(r.words, language, len(r.audio), metadata["dictionary"])
                except AlignmentError as err:
                    results[i] = err.failure
                    continue
                jobs.append((i, job, torch.from_numpy(wave)))
            self._align_jobs(model, metadata, jobs, results)
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def _align_jobs(
        self,
        model: nn.Module,
        metadata: dict,
        jobs: list[tuple[int, WhisperXJob, torch.Tensor]],
        results: list[AlignResult | None],
    ) -> None:
        kind = metadata["type"]
        logits: list[torch.Tensor | None] = [None] * len(jobs)
        lengths = [len(wave) for _, _, wave in jobs]
        long_enough = [k for k, n in enumerate(lengths) if n >= MIN_MODEL_SAMPLES]
        for batch in plan_batches(
            [lengths[k] for k in long_enough],
            self.max_batch_samples,
            self.batch_size,
            self.max_padding,
        ):
            ks = [long_enough[b] for b in batch]
            out = ctc_logits(model, kind, [jobs[k][2] for k in ks], self.device)
            for k, item_logits in zip(ks, out, strict=True):
                logits[k] = item_logits
        for k, n in enumerate(lengths):
            if n < MIN_MODEL_SAMPLES:  # whisperX pads these, telling torchaudio models the length
                logits[k] = _lone_logits(model, kind, jobs[k][2], self.device)
        # the emissions stay on the device: one trellis batch for all the forward passes
        times = job_word_times(
            logits, [job for _, job, _ in jobs], metadata, self.interpolate_method
        )  # type: ignore[arg-type]
        for (i, job, _), t in zip(jobs, times, strict=True):
            ok = not isinstance(t, AlignmentFailure)
            results[i] = to_aligned_words(job, t, metadata) if ok else t


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
        self.blank = whisperx_blank(self.dictionary)
        self.hop = frame_hop_samples(self.model, self.metadata["type"])

    def word_tokens(self, words: Sequence[str]) -> list[list[int]]:
        # whisperX lower-cases each character and aligns those in the dictionary; the others
        # get its wildcard column in `align_pieces` but no token here, nor does "|".
        d = self.dictionary
        ids = [[d[c] for c in w.lower() if c in d and c not in " |"] for w in words]
        return [[i for i in w if i != self.blank] for w in ids]

    def align_pieces(
        self, pieces: Sequence[tuple[torch.Tensor, Sequence[str]]]
    ) -> list[AlignResult]:
        # n_samples = frames * hop: whisperX's time per frame (duration / frames) is one hop.
        device = self.aligner.device
        return emissions_to_words(
            [lp.to(device) for lp, _ in pieces],
            [words for _, words in pieces],
            self.metadata,
            [len(lp) * self.hop for lp, _ in pieces],
            self.interpolate_method,
        )
