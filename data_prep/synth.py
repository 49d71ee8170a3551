"""Synthetic speech with exact word times: espeak-ng through ``libespeak-ng.so.1`` (ctypes).

Ground truth for tests and the demo: :func:`synthesize` speaks a sentence and returns 16 kHz audio
with the start and end of every written token, taken from the synthesizer's own word and phoneme
events rather than from an aligner. :func:`data_prep.sentences.sentence_corpus` makes simple
sentences to speak.

How the times are found (all at espeak's native rate, then converted to seconds):

* a WORD event gives the sample where a word begins and its character offset in the input, which
  maps it to a whitespace-separated token; events inside one token ("42" is spoken as "forty
  two") are merged;
* PHONEME events give the start of every phoneme; pause phonemes start with ``_``. A token starts
  at its first sounding phoneme and ends where the phoneme after its last sounding phoneme begins
  (a pause), or where the next token begins;
* tokens that espeak speaks as one dictionary word ("for a", "of a") share that word's phonemes
  by letter count; :attr:`SynthUtterance.approximate` lists them.

NOTE: each synthesis runs in its own short-lived process (see :mod:`data_prep.espeak_worker`):
espeak-ng keeps static state between syntheses, which makes repeated calls in one process differ.
"""

from __future__ import annotations

import functools
import logging
import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from data_prep.espeak_worker import espeak
from vrt_finetune.constants import SAMPLE_RATE, seconds_to_samples

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_MIN_RATE_WPM, _MAX_RATE_WPM = 80, 450  # espeak-ng clamps to this range; we refuse instead


@dataclass(frozen=True)
class SynthWord:
    """One written token and the time it is spoken."""

    word: str
    """The token as written, punctuation kept (``"heart,"``)."""
    start: float
    """Seconds from the start of the returned audio to the word's first sounding phoneme."""
    end: float
    """Seconds from the start of the returned audio to the end of the word's last phoneme."""


@dataclass(frozen=True, eq=False)  # eq=False: comparing ndarrays with == is not a bool
class SynthUtterance:
    """A synthesized sentence with the time of each of its tokens."""

    text: str
    """The text as given to :func:`synthesize`."""
    audio: np.ndarray
    """(n_samples,) float32 mono waveform at :data:`SAMPLE_RATE`, read-only."""
    words: tuple[SynthWord, ...]
    """One entry per whitespace-separated token of ``text``, in order."""
    voice: str
    """espeak-ng voice name."""
    rate_wpm: int
    """Speaking rate in words per minute."""
    approximate: tuple[int, ...] = ()
    """Indices into :attr:`words` whose times are estimated, not measured: espeak-ng spoke these
    tokens as one word ("for a"), and their span was shared out by letter count."""

    @property
    def duration(self) -> float:
        """Length of :attr:`audio` in seconds."""
        return len(self.audio) / SAMPLE_RATE


# --- word times from events (pure functions) ----------------------------------------------------


def _token_spans(text: str) -> list[tuple[int, int]]:
    """Character ``[start, end)`` of each whitespace-separated token of ``text``."""
    return [m.span() for m in re.finditer(r"\S+", text)]


def _is_pause(phoneme: str) -> bool:
    return phoneme.startswith("_")


def _word_spans(
    spans: Sequence[tuple[int, int]],
    words: Sequence[tuple[int, int, int]],
    phonemes: Sequence[tuple[int, str]],
    n_samples: int,
    texts: Sequence[str],
) -> tuple[list[tuple[int, int]], list[int]]:
    """Sample ``[start, end)`` of each token, from espeak's word and phoneme events.

    Each WORD event goes to the token holding its first character; several events in one token
    ("42" → "forty", "two") merge. A token left without an event was spoken together with the
    token before it (espeak-ng's dictionary has entries such as "for a", "of a"): that group's
    sounding phonemes are then shared out in proportion to letters, cutting at phoneme starts
    and preferring cuts where espeak did report a word.

    Args:
        spans: character ``[start, end)`` of each token in the input text.
        words: WORD events as ``(sample, 0-based char offset, char length)``, in time order.
        phonemes: PHONEME events as ``(sample, mnemonic)``, in time order.
        n_samples: length of the synthesized audio.
        texts: the tokens themselves (for their letter counts).

    Returns:
        ``(times, approximate)``: one ``(start, end)`` per token, ``start < end``, in order and
        not overlapping; and the indices of tokens whose times were shared out, not reported.

    Raises:
        ValueError: no word was spoken, a group has fewer sounding phonemes than tokens, or a
            token made only of punctuation ("--") lost its word. espeak-ng does not speak such a
            token and gives the next word its position, so its time would be made up.
    """
    # Token order never goes back: after some expansions espeak reports a later word with the
    # offset of an earlier character ("for a while": "while" at the "o" of "for").
    events_of: list[list[int]] = [[] for _ in spans]
    token = 0
    for sample, offset, length in words:
        end = offset + max(length, 1)
        hit = next((k for k, (a, b) in enumerate(spans) if offset < b and a < end), None)
        if hit is not None:
            token = max(token, hit)
            events_of[token].append(sample)
    if not any(events_of):
        raise ValueError("espeak-ng reported no word")

    # Groups: a token with events and the event-less tokens after it (leading ones join the first).
    groups: list[list[int]] = []
    pending: list[int] = []
    for k in range(len(spans)):
        if events_of[k]:
            groups.append([*pending, k])
            pending = []
        elif groups:
            groups[-1].append(k)
        else:
            pending.append(k)

    los = [min(s for k in g for s in events_of[k]) for g in groups] + [n_samples]
    phoneme_samples = [s for s, _ in phonemes]  # non-decreasing: events come in time order
    times: list[tuple[int, int]] = []
    approximate: list[int] = []
    for g, group in enumerate(groups):
        lo, hi = los[g], los[g + 1]
        inside = range(bisect_left(phoneme_samples, lo), bisect_left(phoneme_samples, hi))
        sounding = [i for i in inside if not _is_pause(phonemes[i][1])]
        if len(sounding) < len(group):
            raise ValueError(f"espeak-ng spoke too few phonemes for token(s) {group}")
        if len(group) > 1:
            if any(not any(ch.isalnum() for ch in texts[k]) for k in group):
                raise ValueError(f"espeak-ng lost the word of token(s) {group[1:]}")
            approximate.extend(group)
        starts = _share_out(
            n=len(sounding),
            weights=[max(1, sum(ch.isalnum() for ch in texts[k])) for k in group],
            preferred=[
                next((j for j, i in enumerate(sounding) if phonemes[i][0] >= s), len(sounding))
                for k in group
                for s in events_of[k]
            ],
        )
        for part, first in enumerate(starts):
            last = sounding[(starts[part + 1] if part + 1 < len(starts) else len(sounding)) - 1]
            # The last phoneme lasts until the next phoneme event (a pause or the next word's
            # first phoneme) or, failing one, until the next group begins.
            last_at = phonemes[last][0]
            end = next((s for s, _ in phonemes[last + 1 :] if s > last_at), hi)
            times.append((phonemes[sounding[first]][0], min(end, hi)))
    return times, approximate


def _share_out(n: int, weights: Sequence[int], preferred: Sequence[int]) -> list[int]:
    """First index of each of ``len(weights)`` consecutive non-empty parts of ``range(n)``.

    Cuts fall near the weights' proportions; a cut snaps to a ``preferred`` index (a reported
    word start) within 1.5 of it.
    """
    total = sum(weights)
    starts = [0]
    for k in range(1, len(weights)):
        target = n * sum(weights[:k]) / total
        near = [p for p in preferred if 0 < p < n and abs(p - target) <= 1.5]
        cut = min(near, key=lambda p: abs(p - target)) if near else round(target)
        # Every part keeps at least one phoneme.
        starts.append(min(max(cut, starts[-1] + 1), n - (len(weights) - k)))
    return starts


# --- public API ---------------------------------------------------------------------------------


@functools.cache
def _resampler(native_rate: int) -> torch.nn.Module:
    # Imported here so that corpus-only users do not pay for importing torch. The transform keeps
    # its sinc kernel, which takes far longer to build than to apply.
    import torch
    import torchaudio.transforms

    return torchaudio.transforms.Resample(native_rate, SAMPLE_RATE, dtype=torch.float64)


def _resample(native: np.ndarray, native_rate: int) -> np.ndarray:
    """(n,) int16 samples at ``native_rate`` → (m,) float32 in [-1, 1] at :data:`SAMPLE_RATE`."""
    import torch

    with torch.no_grad():
        out = _resampler(native_rate)(torch.from_numpy(native / 32768.0)).numpy()
    # The sinc filter can overshoot a full-scale input slightly.
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def synthesize(
    text: str,
    voice: str = "en-us",
    rate_wpm: int = 160,
    pitch: int = 50,
    lead_silence_s: float = 0.0,
) -> SynthUtterance:
    """Speak ``text`` with espeak-ng and time each of its whitespace-separated tokens.

    Deterministic: the same arguments give identical samples. Thread-safe.

    Args:
        text: plain text (not SSML). Tokens made only of punctuation ("--") are not supported.
        voice: espeak-ng voice or language name, e.g. ``"en-us"``, ``"en-gb"``, ``"en-us+f3"``
            (``espeak-ng --voices`` lists them).
        rate_wpm: speaking rate in words per minute, 80 to 450.
        pitch: base pitch, 0 to 100 (50 is the voice's normal).
        lead_silence_s: seconds of digital silence put before the speech (word times include it).

    Returns:
        The utterance: ``audio`` (n_samples,) float32 at :data:`SAMPLE_RATE`, and one
        :class:`SynthWord` per token with ``start < end``, in order, within the audio.

    Raises:
        ValueError: empty text, an argument out of range, an unknown voice, or a token made only
            of punctuation that espeak-ng does not speak ("--").
        OSError: ``libespeak-ng`` cannot be loaded.
        RuntimeError: the synthesis process failed.
    """
    spans = _token_spans(text)
    if not spans:
        raise ValueError("nothing to synthesize: text has no words")
    if not _MIN_RATE_WPM <= rate_wpm <= _MAX_RATE_WPM:
        raise ValueError(f"rate_wpm must be in [{_MIN_RATE_WPM}, {_MAX_RATE_WPM}], got {rate_wpm}")
    if not 0 <= pitch <= 100:
        raise ValueError(f"pitch must be in [0, 100], got {pitch}")
    if lead_silence_s < 0:
        raise ValueError(f"lead_silence_s must be >= 0, got {lead_silence_s}")

    raw = espeak(text, voice, rate_wpm, pitch)
    tokens = [text[a:b] for a, b in spans]
    try:
        times, approximate = _word_spans(spans, raw.words, raw.phonemes, len(raw.samples), tokens)
    except ValueError as e:
        raise ValueError(f"{e}; tokens: {tokens}; text: {text!r}") from None
    if approximate:
        log.warning(
            "espeak-ng did not time %s one by one: their times are shared out, not measured",
            [tokens[k] for k in approximate],
        )

    n_lead = seconds_to_samples(lead_silence_s)
    audio = np.concatenate([np.zeros(n_lead, np.float32), _resample(raw.samples, raw.sample_rate)])
    audio.flags.writeable = False
    offset = n_lead / SAMPLE_RATE
    duration = len(audio) / SAMPLE_RATE
    words = tuple(
        SynthWord(
            word=tokens[k],
            start=offset + s / raw.sample_rate,
            end=min(offset + e / raw.sample_rate, duration),  # resampling may round the length down
        )
        for k, (s, e) in enumerate(times)
    )
    return SynthUtterance(
        text=text,
        audio=audio,
        words=words,
        voice=voice,
        rate_wpm=rate_wpm,
        approximate=tuple(approximate),
    )
