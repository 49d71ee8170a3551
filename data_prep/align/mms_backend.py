"""Multilingual forced alignment the MMS way: romanised characters, CTC Viterbi.

Follows torchaudio's "forced alignment for multilingual data" recipe: text in any script is
romanised with ``uroman`` to the 27 lower-case Latin characters (+ apostrophe) of the
``MMS_FA`` model (trained on 1,130 languages), and the best CTC path through the emission is
the one ``torchaudio.functional.forced_align`` finds, computed for a whole batch at once on the
model's device (:func:`~data_prep.align.ctc_trellis.ctc_paths`; ``forced_align`` takes one
utterance per call); each word spans its first to last character.

The backend takes either the real bundle (:meth:`MMSAligner.from_bundle`, which downloads the
1.2 GB ``MMS_FA`` weights on first use), a Hugging Face CTC model
(:meth:`MMSAligner.from_pretrained`), or any CTC model plus its label dictionary (tests use a
tiny random one). Utterances are batched through the model like the whisperX backend
(:mod:`data_prep.align.ctc_batch`). Star tokens (``MMS_FA``'s ``*`` for untranscribed speech)
are not used: the pipeline aligns complete transcripts.
"""

from __future__ import annotations

import functools
import itertools
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    ModelKind,
    ctc_log_probs,
    ctc_logits,
    default_max_padding,
    frame_hop_samples,
    plan_batches,
)
from data_prep.align.ctc_trellis import ctc_paths, plan_trellis_batches
from vrt_finetune.constants import SAMPLE_RATE, SAMPLES_PER_ENCODER_FRAME

MIN_MODEL_SAMPLES = 400
"""Receptive field of a wav2vec2 feature encoder: shorter audio is zero-padded to it."""


@functools.cache
def _uroman() -> Any:
    import uroman

    return uroman.Uroman()  # ~4 s to load its tables: only built when a non-Latin word appears


def romanize(word: str, dictionary: Mapping[str, int]) -> str:
    """The characters of ``word`` the model can align, romanised if needed.

    Lower-cases; Latin letters with diacritics lose them (NFKD); other scripts go through
    ``uroman``. Characters still outside ``dictionary`` (digits, symbols) are dropped, so a word
    may come back empty: the aligner cannot place it.

    Args:
        word: One normalised spoken word.
        dictionary: Alignable characters → ids (lower case).

    Returns:
        The alignable characters, possibly ``""``.
    """
    w = word.lower()
    if all(c in dictionary for c in w):
        return w
    stripped = "".join(c for c in unicodedata.normalize("NFKD", w) if not unicodedata.combining(c))
    if not stripped.isascii():
        stripped = _uroman().romanize_string(stripped).lower()
    return "".join(c for c in stripped if c in dictionary)


@dataclass(frozen=True)
class _Job:
    """One utterance's targets: label per token and the word each token belongs to."""

    targets: list[int]
    word_of: list[int]
    """Per token, its word's index (-1: the delimiter between two words)."""


def _make_job(
    words: Sequence[str],
    char_ids: Mapping[str, int],
    delimiter_id: int | None,
    n_frames: int,
    duration: float,
) -> _Job:
    chars = [romanize(w, char_ids) for w in words]
    if not any(chars):
        raise AlignmentError("nothing_to_align", f"no alignable character in {list(words)!r}")
    targets: list[int] = []
    word_of: list[int] = []
    for i, cs in enumerate(chars):
        if not cs:
            continue
        if targets and delimiter_id is not None:
            targets.append(delimiter_id)
            word_of.append(-1)
        targets += [char_ids[c] for c in cs]
        word_of += [i] * len(cs)
    # CTC needs one frame per token plus a blank between equal neighbours.
    needed = len(targets) + sum(a == b for a, b in itertools.pairwise(targets))
    if needed > n_frames:
        raise AlignmentError(
            "too_short", f"{needed} CTC frames needed, {n_frames} in {duration:.2f} s of audio"
        )
    return _Job(targets, word_of)


def emissions_to_words(
    log_probs: Sequence[torch.Tensor],
    words: Sequence[Sequence[str]],
    char_ids: Mapping[str, int],
    *,
    blank: int,
    n_samples: Sequence[int],
    delimiter_id: int | None = None,
    frame_hop: int = SAMPLES_PER_ENCODER_FRAME,
) -> list[AlignResult]:
    """Word times of utterances from their CTC emissions by Viterbi forced alignment.

    The path is ``torchaudio.functional.forced_align``'s, found for all utterances at once on
    the emissions' device (:func:`~data_prep.align.ctc_trellis.ctc_paths`).

    Args:
        log_probs: Per utterance, CTC log-probabilities (or logits; ``log_softmax`` is applied),
            shape ``(n_frames, vocab)``, one frame per ``frame_hop`` samples; all on one device.
        words: Per utterance, its spoken words in order.
        char_ids: Alignable character → column (lower case; no blank, no delimiter).
        blank: Column of the CTC blank.
        n_samples: Per utterance, its length in samples (bound of every time).
        delimiter_id: Column of the word separator put between words when the model has one
            (``"|"`` of Hugging Face character models), else ``None``.
        frame_hop: Samples per CTC frame (the model's total conv stride).

    Returns:
        Per utterance, one :class:`AlignedWord` per word (a word with no alignable character
        is interpolated, ``flagged=True``), or why it failed: no word has an alignable character
        (``nothing_to_align``), the text needs more frames than the audio has (``too_short``).
    """
    results: list[AlignResult | None] = [None] * len(log_probs)
    jobs: dict[int, _Job] = {}
    for i, (lp, w) in enumerate(zip(log_probs, words, strict=True)):
        try:
            duration = n_samples[i] / SAMPLE_RATE
            jobs[i] = _make_job(w, char_ids, delimiter_id, lp.shape[0], duration)
        except AlignmentError as err:
            results[i] = err.failure
    todo = list(jobs)
    sizes = [(int(log_probs[i].shape[0]), 2 * len(jobs[i].targets) + 1) for i in todo]
    frame_s = frame_hop / SAMPLE_RATE
    for batch in plan_trellis_batches(sizes):
        idx = [todo[k] for k in batch]
        emissions = [torch.log_softmax(log_probs[i].float(), dim=-1) for i in idx]
        paths = ctc_paths(emissions, [jobs[i].targets for i in idx], blank)
        for i, path in zip(idx, paths, strict=True):
            duration = n_samples[i] / SAMPLE_RATE
            if path is None:
                results[i] = AlignmentFailure("backtrack_failed", "no CTC path (-inf emissions)")
                continue
            word_of = np.array(jobs[i].word_of)
            placed: list[AlignedWord | None] = [None] * len(words[i])
            for w in np.unique(word_of[word_of >= 0]).tolist():
                mine = np.flatnonzero(word_of == w)
                # A span's end is exclusive: the word ends where its last character's frames end.
                end = min(int(path.end[mine[-1]]) * frame_s, duration)
                start = min(int(path.start[mine[0]]) * frame_s, end)
                placed[w] = AlignedWord(words[i][w], start, end, float(np.mean(path.score[mine])))
            results[i] = interpolate_missing(words[i], placed, duration)
    return results  # type: ignore[return-value]


class MMSAligner(CTCAligner):
    """CTC forced alignment of romanised text with any wav2vec2-style CTC model.

    Args:
        model: CTC model in eval mode on ``device``.
        dictionary: Label → output column; keys are lower-case characters.
        kind: ``torchaudio`` (``model(x, lengths) -> (emission, lengths)``, bundle wrappers
            included) or ``huggingface`` (``model(x).logits``).
        blank: Column of the CTC blank.
        delimiter: Word-separator label used when it is in ``dictionary`` (HF char models).
        device: Torch device of ``model``.
        batch_size: Most utterances per forward pass.
        max_batch_seconds: Padded audio per forward pass (``batch_size * longest``).
        max_padding: Largest share of an utterance's row that may be padding; ``None``: 5 % on
            CPU, 50 % on GPU (see ``default_max_padding``).
        normalize: Zero-mean, unit-variance normalise each utterance first, as a Hugging Face
            ``Wav2Vec2FeatureExtractor`` with ``do_normalize`` does (per item, before padding).
    """

    name = "mms"

    def __init__(
        self,
        model: nn.Module,
        dictionary: Mapping[str, int],
        *,
        kind: ModelKind = "torchaudio",
        blank: int = 0,
        delimiter: str | None = "|",
        device: str = "cpu",
        batch_size: int = 8,
        max_batch_seconds: float = 120.0,
        max_padding: float | None = None,
        normalize: bool = False,
    ) -> None:
        self.model = model.eval()
        self.frame_hop = frame_hop_samples(model, kind)
        self.kind: ModelKind = kind
        self.blank = blank
        self.delimiter_id = dictionary.get(delimiter) if delimiter is not None else None
        # Only single characters are aligned; MMS_FA's blank label is "-", which must not
        # swallow hyphens, and special tokens ("<pad>", "<s>") are never characters.
        self.char_ids = {
            k.lower(): v
            for k, v in dictionary.items()
            if len(k) == 1 and v != blank and v != self.delimiter_id
        }
        self.device = device
        self.batch_size = batch_size
        self.max_batch_samples = int(max_batch_seconds * SAMPLE_RATE)
        self.max_padding = default_max_padding(device) if max_padding is None else max_padding
        self.normalize = normalize

    @classmethod
    def from_bundle(
        cls, bundle: Any = None, *, model_dir: str | None = None, device: str = "cpu", **kwargs: Any
    ) -> MMSAligner:
        """The real ``torchaudio.pipelines.MMS_FA`` model (downloaded once into ``model_dir``).

        The bundle's wrapper layer-normalises its input and returns log-probabilities;
        :func:`~data_prep.align.ctc_batch.ctc_logits` applies both per utterance.
        """
        if bundle is None:
            from torchaudio.pipelines import MMS_FA as bundle
        dl_kwargs = {"model_dir": model_dir} if model_dir else None
        model = bundle.get_model(with_star=False, dl_kwargs=dl_kwargs).to(device)
        return cls(model, bundle.get_dict(star=None), kind="torchaudio", device=device, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str,
        *,
        cache_dir: str | None = None,
        local_files_only: bool = False,
        device: str = "cpu",
        **kwargs: Any,
    ) -> MMSAligner:
        """A Hugging Face character CTC model (``Wav2Vec2ForCTC`` + processor) by name or path.

        Each utterance is normalised like the model's feature extractor would (``do_normalize``),
        but per item before padding, so batching does not change it.
        """
        from transformers import AutoModelForCTC, AutoProcessor

        processor = AutoProcessor.from_pretrained(
            name_or_dir, cache_dir=cache_dir, local_files_only=local_files_only
        )
        model = AutoModelForCTC.from_pretrained(
            name_or_dir, cache_dir=cache_dir, local_files_only=local_files_only
        ).to(device)
        tokenizer = processor.tokenizer
        return cls(
            model,
            tokenizer.get_vocab(),
            kind="huggingface",
            blank=tokenizer.pad_token_id,
            delimiter=getattr(tokenizer, "word_delimiter_token", None),
            device=device,
            normalize=bool(getattr(processor.feature_extractor, "do_normalize", False)),
            **kwargs,
        )

    def _model_input(self, audio: np.ndarray) -> torch.Tensor:
        """One utterance's samples exactly as the model sees them alone, ``(n_samples,)``."""
        wave = torch.from_numpy(as_waveform(audio))
        if self.normalize:  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm, per item
            wave = (wave - wave.mean()) / torch.sqrt(wave.var(correction=0) + 1e-7)
        if len(wave) < MIN_MODEL_SAMPLES:
            wave = nn.functional.pad(wave, (0, MIN_MODEL_SAMPLES - len(wave)))
        return wave

    def frame_log_probs(
        self, waves: Sequence[np.ndarray], language: str | None = None
    ) -> list[torch.Tensor]:
        """CTC log-probabilities of waveform windows, computed as for a whole utterance.

        Long-form alignment (:mod:`data_prep.align.longform`) calls this on overlapping windows
        of a long recording; each window is normalised on its own, like an utterance.

        Args:
            waves: Mono windows at ``SAMPLE_RATE``, shape ``(n_samples_i,)``.
            language: Unused (one model serves every language); accepted for a common call.

        Returns:
            Per window, float32 CPU log-probabilities ``(n_frames_i, vocab)``.
        """
        x = [self._model_input(w) for w in waves]
        return ctc_log_probs(self.model, self.kind, x, self.device)

    def long_form_backend(self, language: str) -> LongFormBackend:
        """MMS's model, romanisation and ``forced_align`` for long-form alignment (one model
        serves every language)."""
        return _MMSLongForm(self, language)

    def align_batch(self, requests: Sequence[AlignRequest]) -> list[AlignResult]:
        """Align utterances, several per forward pass and all in one Viterbi batch (see
        :meth:`Aligner.align_batch`)."""
        waves = [self._model_input(r.audio) for r in requests]
        logits: list[torch.Tensor | None] = [None] * len(requests)
        for batch in plan_batches(
            [len(w) for w in waves], self.max_batch_samples, self.batch_size, self.max_padding
        ):
            out = ctc_logits(self.model, self.kind, [waves[i] for i in batch], self.device)
            for i, item_logits in zip(batch, out, strict=True):
                logits[i] = item_logits
        return emissions_to_words(
            logits,  # type: ignore[arg-type]
            [r.words for r in requests],
            self.char_ids,
            blank=self.blank,
            n_samples=[len(r.audio) for r in requests],
            delimiter_id=self.delimiter_id,
            frame_hop=self.frame_hop,
        )


class _MMSLongForm(LongFormBackend):
    """What long-form alignment needs of an :class:`MMSAligner`."""

    def __init__(self, aligner: MMSAligner, language: str) -> None:
        super().__init__(aligner, language)
        self.mms = aligner
        self.blank, self.hop = aligner.blank, aligner.frame_hop

    def word_tokens(self, words: Sequence[str]) -> list[list[int]]:
        ids = self.mms.char_ids
        return [[ids[c] for c in romanize(w, ids)] for w in words]

    def align_pieces(
        self, pieces: Sequence[tuple[torch.Tensor, Sequence[str]]]
    ) -> list[AlignResult]:
        a = self.mms
        return emissions_to_words(
            [lp.to(a.device) for lp, _ in pieces],
            [words for _, words in pieces],
            a.char_ids,
            blank=a.blank,
            n_samples=[len(lp) * self.hop for lp, _ in pieces],
            delimiter_id=a.delimiter_id,
            frame_hop=self.hop,
        )
