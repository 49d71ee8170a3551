"""English forced alignment with PocketSphinx (CMU Sphinx's HMM recogniser, PyPI ``pocketsphinx``).

A light aligner that needs neither torch nor a download: the wheel carries an American English
acoustic model and the CMU dictionary. Each utterance is decoded against a grammar of exactly
its words (``Decoder.set_align_text``) and word spans are read from the segmentation on its
10 ms frame grid.

Three things the library does not do by itself:

* its default beams prune the forced path of sentences of ten or more words and return no
  hypothesis at all (even 1e-80 beams still lose some seven-word sentences of espeak-ng
  speech, so the beams are 1e-200), and its second passes (flat lexicon, best path through
  the lattice) can drop the last words of a sentence, so both are off;
* a word missing from the dictionary makes the grammar fail; such words get a pronunciation
  from espeak-ng's letter-to-sound rules (:mod:`data_prep.align.arpabet`) first;
* words the segmentation does not hold are given times from their neighbours and flagged
  (:func:`~data_prep.align.base.interpolate_missing`), as in the other backends.

Scores are PocketSphinx's per-word posterior (``seg().prob``, a log value turned into [0, 1]).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from data_prep.align.arpabet import arpabet
from data_prep.align.base import (
    AlignedWord,
    Aligner,
    AlignmentError,
    AlignmentFailure,
    AlignRequest,
    as_waveform,
    audio_seconds,
    interpolate_missing,
)

FRAME_SECONDS = 0.01
"""PocketSphinx's frame step (``-frate 100``)."""

WIDE_BEAMS: dict[str, float] = {"beam": 1e-200, "wbeam": 1e-200, "pbeam": 1e-200}
"""Beams wide enough that the forced path of a 30 s utterance survives pruning."""

_ALT = re.compile(r"\(\d+\)$")  # "read(2)": the dictionary's second pronunciation of "read"


def _dict_word(word: str) -> str:
    """A spoken word as the CMU dictionary writes it (lower case, letters and apostrophes)."""
    return re.sub(r"[^\w']", "", word.casefold())


class PocketSphinxAligner(Aligner):
    """English aligner over PocketSphinx's bundled acoustic model and CMU dictionary."""

    name = "pocketsphinx"

    def __init__(
        self, beams: dict[str, float] | None = None, min_seconds: float = 0.1, voice: str = "en-us"
    ) -> None:
        """Set up the aligner; the decoder itself is built on first use.

        Args:
            beams: Decoder beam settings; ``None``: :data:`WIDE_BEAMS`.
            min_seconds: Shorter utterances fail as ``too_short``.
            voice: espeak-ng voice for the pronunciation of words not in the dictionary.
        """
        self.beams = dict(WIDE_BEAMS if beams is None else beams)
        self.min_seconds = min_seconds
        self.voice = voice
        self._decoder = None
        self._lock = threading.Lock()  # one decoder, one utterance at a time
        self.added: dict[str, tuple[str, ...]] = {}
        """Words this aligner added to the dictionary, with their espeak-ng pronunciation."""

    def _get_decoder(self) -> Any:  # pocketsphinx.Decoder, imported on first use
        if self._decoder is None:
            try:
                from pocketsphinx import Decoder
            except ImportError as err:  # pragma: no cover - pinned in pyproject
                raise RuntimeError(
                    "the pocketsphinx backend needs `pip install pocketsphinx`"
                ) from err
            # bestpath/fwdflat rescoring can end the path early and drop the last words.
            self._decoder = Decoder(loglevel="FATAL", bestpath=False, fwdflat=False, **self.beams)
        return self._decoder

    def refusal(self, request: AlignRequest) -> AlignmentFailure | None:
        """English only; utterances shorter than ``min_seconds`` fail as ``too_short``."""
        if not request.language.lower().startswith("en"):
            return AlignmentFailure(
                "unsupported_language",
                f"the pocketsphinx backend aligns English only, not {request.language!r}",
            )
        if request.duration < self.min_seconds:
            return AlignmentFailure(
                "too_short", f"{request.duration:.3f} s is under {self.min_seconds} s"
            )
        if not request.words:
            return AlignmentFailure("nothing_to_align", "no words")
        return None

    def _known(self, word: str) -> bool:
        """Make ``word`` known to the dictionary (adding an espeak-ng pronunciation if needed)."""
        decoder = self._get_decoder()
        if decoder.lookup_word(word) is not None:
            return True
        phones = arpabet(word, self.voice)
        if not phones:
            return False
        decoder.add_word(word, " ".join(phones), True)
        self.added[word] = phones
        return True

    def align(self, request: AlignRequest) -> list[AlignedWord]:
        """Align one English utterance (see :meth:`Aligner.align`)."""
        failure = self.refusal(request)
        if failure is not None:
            raise AlignmentError(failure.reason, failure.message)
        audio = as_waveform(request.audio)
        # 16-bit PCM at SAMPLE_RATE (16 kHz), the rate of the bundled acoustic model
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        with self._lock:
            decoder = self._get_decoder()
            keys = [_dict_word(w) for w in request.words]
            # Words without a pronunciation stay out of the grammar and are interpolated.
            aligned = [i for i, k in enumerate(keys) if k and self._known(k)]
            if not aligned:
                raise AlignmentError("nothing_to_align", "no word has a pronunciation")
            decoder.set_align_text(" ".join(keys[i] for i in aligned))
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            if decoder.hyp() is None:
                raise AlignmentError(
                    "align_failed", f"PocketSphinx found no path through {len(aligned)} words"
                )
            segments = [(s.word, s.start_frame, s.end_frame, s.prob) for s in decoder.seg()]
            logmath = decoder.get_logmath()
            placed = _place(request.words, keys, aligned, segments, logmath.exp)
        return interpolate_missing(request.words, placed, audio_seconds(audio))


def _place(
    words: Sequence[str],
    keys: Sequence[str],
    aligned: Sequence[int],
    segments: Sequence[tuple[str, int, int, int]],
    exp: Callable[[int], float],
) -> list[AlignedWord | None]:
    """Walk the segmentation and give each word of the grammar its span, in order.

    Args:
        words: The request's words (reported as given, not in the dictionary's spelling).
        keys: Their dictionary forms.
        aligned: Indices of the words that went into the grammar.
        segments: ``(word, first frame, last frame (inclusive), log posterior)`` per segment.
        exp: The decoder's log-math ``exp`` (its logs are in its own base).

    Returns:
        Per word, its span or ``None`` (not in the grammar, or not in the segmentation).
    """
    placed: list[AlignedWord | None] = [None] * len(keys)
    pending = list(aligned)
    for word, first, last, prob in segments:
        if not pending or _ALT.sub("", word) != keys[pending[0]]:
            continue  # <s>, </s>, <sil>, fillers
        i = pending.pop(0)
        score = float(np.clip(exp(prob), 0.0, 1.0))
        placed[i] = AlignedWord(words[i], first * FRAME_SECONDS, (last + 1) * FRAME_SECONDS, score)
    return placed
