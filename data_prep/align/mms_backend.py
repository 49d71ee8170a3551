"""Multilingual forced alignment the MMS way: romanised characters, CTC Viterbi in torchaudio.

Follows torchaudio's "forced alignment for multilingual data" recipe: text in any script is
romanised with ``uroman`` to the 27 lower-case Latin characters (+ apostrophe) of the
``MMS_FA`` model (trained on 1,130 languages), and ``torchaudio.functional.forced_align``
finds the best CTC path through the emission; each word spans its first to last character.

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
from typing import Any

import numpy as np
import torch
from torch import nn

from data_prep.align.base import (
    AlignedWord,
    AlignmentError,
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


def emissions_to_words(
    log_probs: torch.Tensor,
    words: Sequence[str],
    char_ids: Mapping[str, int],
    *,
    blank: int,
    n_samples: int,
    delimiter_id: int | None = None,
    frame_hop: int = SAMPLES_PER_ENCODER_FRAME,
) -> list[AlignedWord]:
    """Word times from one utterance's CTC emission by Viterbi forced alignment.

    Args:
        log_probs: CTC log-probabilities (or logits; ``log_softmax`` is applied), shape
            ``(n_frames, vocab)``, one frame per ``frame_hop`` samples.
        words: Spoken words, in order.
        char_ids: Alignable character → column (lower case; no blank, no delimiter).
        blank: Column of the CTC blank.
        n_samples: Length of the utterance in samples (bound of every time).
        delimiter_id: Column of the word separator put between words when the model has one
            (``"|"`` of Hugging Face character models), else ``None``.
        frame_hop: Samples per CTC frame (the model's total conv stride).

    Returns:
        One :class:`AlignedWord` per word; a word with no alignable character is interpolated
        (``flagged=True``).

    Raises:
        AlignmentError: no word has an alignable character, or the text needs more frames
            than the audio has.
    """
    duration = n_samples / SAMPLE_RATE
    chars = [romanize(w, char_ids) for w in words]
    if not any(chars):
        raise AlignmentError("nothing_to_align", f"no alignable character in {list(words)!r}")
    targets: list[int] = []
    word_of: list[int] = []  # per target token, its word index (-1: delimiter)
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
    n_frames = log_probs.shape[0]
    if needed > n_frames:
        raise AlignmentError(
            "too_short", f"{needed} CTC frames needed, {n_frames} in {duration:.2f} s of audio"
        )
    import torchaudio.functional as taf

    emission = torch.log_softmax(log_probs.float(), dim=-1)[None]
    path, scores = taf.forced_align(
        emission, torch.tensor([targets], dtype=torch.int32), blank=blank
    )
    spans = taf.merge_tokens(path[0], scores[0].exp(), blank=blank)
    if len(spans) != len(targets):
        raise AlignmentError(
            "backtrack_failed", f"{len(spans)} token spans for {len(targets)} tokens"
        )
    frame_s = frame_hop / SAMPLE_RATE
    per_word: dict[int, list[Any]] = {}
    for span, i in zip(spans, word_of, strict=True):
        if i >= 0:
            per_word.setdefault(i, []).append(span)
    placed: list[AlignedWord | None] = [None] * len(words)
    for i, mine in per_word.items():
        # A span's end is exclusive: the word ends where its last character's frames end.
        end = min(mine[-1].end * frame_s, duration)
        start = min(mine[0].start * frame_s, end)
        placed[i] = AlignedWord(words[i], start, end, float(np.mean([s.score for s in mine])))
    return interpolate_missing(words, placed, duration)


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
        """Align utterances, several per forward pass (see :meth:`Aligner.align_batch`)."""
        waves = [self._model_input(r.audio) for r in requests]
        results: list[AlignResult | None] = [None] * len(requests)
        for batch in plan_batches(
            [len(w) for w in waves], self.max_batch_samples, self.batch_size, self.max_padding
        ):
            logits = ctc_logits(self.model, self.kind, [waves[i] for i in batch], self.device)
            for i, item_logits in zip(batch, logits, strict=True):
                try:
                    results[i] = emissions_to_words(
                        item_logits,
                        requests[i].words,
                        self.char_ids,
                        blank=self.blank,
                        n_samples=len(requests[i].audio),
                        delimiter_id=self.delimiter_id,
                        frame_hop=self.frame_hop,
                    )
                except AlignmentError as err:
                    results[i] = err.failure
        return results  # type: ignore[return-value]


class _MMSLongForm(LongFormBackend):
    """What long-form alignment needs of an :class:`MMSAligner`."""

    def __init__(self, aligner: MMSAligner, language: str) -> None:
        super().__init__(aligner, language)
        self.mms = aligner
        self.blank, self.hop = aligner.blank, aligner.frame_hop

    def word_tokens(self, words: Sequence[str]) -> list[list[int]]:
        ids = self.mms.char_ids
        return [[ids[c] for c in romanize(w, ids)] for w in words]

    def align_piece(self, log_probs: torch.Tensor, words: Sequence[str]) -> list[AlignedWord]:
        a = self.mms
        return emissions_to_words(
            log_probs,
            words,
            a.char_ids,
            blank=a.blank,
            n_samples=len(log_probs) * self.hop,
            delimiter_id=a.delimiter_id,
            frame_hop=self.hop,
        )
