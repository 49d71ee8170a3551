"""espeak-ng voices for the synthetic source: a typed voice, its speaker id, and who says what.

A :class:`SynthVoice` is one espeak-ng voice with a variant, pitch and rate (``source.voices``
in a recipe); its :attr:`SynthVoice.id` becomes the item's speaker, so splits by speaker,
per-speaker scores and evaluation per voice see each voice as one speaker.
:func:`assign_voices` picks a voice for each sentence from the seed. Kept apart from
:mod:`data_prep.synth` (which speaks one sentence with whatever voice it is given) and from
:mod:`data_prep.config` (which only declares the field).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_VOICES: dict[str, str] = {"en": "en-us", "es": "es", "ru": "ru"}
"""The espeak-ng voice each synthetic language is spoken with when no voices are given."""

_NAME = re.compile(r"[A-Za-z0-9_/-]+")


def default_rate(index: int) -> int:
    """Words per minute of sentence ``index`` when its voice sets no rate: 150 to 190 in turn
    (the synthetic source's rates before voices could be configured)."""
    return 150 + 10 * (index % 5)


@dataclass(frozen=True)
class SynthVoice:
    """One espeak-ng voice, e.g. ``{name: en-us, variant: f3, pitch: 60, rate: 170}``."""

    name: str
    """espeak-ng voice or language (``en-us``, ``en-gb``, ``es``, ``es-419``, ``ru``;
    ``espeak-ng --voices`` lists them). It must speak the source's language."""
    variant: str | None = None
    """espeak-ng voice variant (``f1``-``f5`` female, ``m1``-``m7`` male, ``klatt``, ``croak``
    …; ``espeak-ng --voices=variant``); ``null``: the voice's own."""
    pitch: int = 50
    """Base pitch, 0 to 100 (50 is the voice's normal)."""
    rate: int | None = None
    """Words per minute, 80 to 450; ``null``: 150 to 190 from sentence to sentence."""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"voice name {self.name!r}: an espeak-ng voice such as 'en-us' "
                "(put a variant in `variant`, not after a '+')"
            )
        if self.variant is not None and not _NAME.fullmatch(self.variant):
            raise ValueError(f"voice variant {self.variant!r}: a name such as 'f3' or 'm3'")
        if not 0 <= self.pitch <= 100:
            raise ValueError(f"voice pitch must be in [0, 100], got {self.pitch}")
        if self.rate is not None and not 80 <= self.rate <= 450:
            raise ValueError(f"voice rate must be in [80, 450] words per minute, got {self.rate}")

    @property
    def espeak_name(self) -> str:
        """What espeak-ng is asked for: ``en-us+f3``."""
        return f"{self.name}+{self.variant}" if self.variant else self.name

    @property
    def id(self) -> str:
        """The speaker id: the espeak-ng name, then the pitch and rate where set
        (``en-us+f3_p60_r170``)."""
        parts = [self.espeak_name]
        if self.pitch != 50:
            parts.append(f"p{self.pitch}")
        if self.rate is not None:
            parts.append(f"r{self.rate}")
        return "_".join(parts)

    @property
    def language(self) -> str:
        """The language the voice's name says (``es-419`` → ``es``, ``roa/es`` → ``es``)."""
        return self.name.rpartition("/")[2].split("-")[0].lower()

    def rate_for(self, index: int) -> int:
        """Words per minute for sentence ``index``."""
        return self.rate if self.rate is not None else default_rate(index)


def assign_voices(n: int, voices: Sequence[SynthVoice], seed: int) -> list[SynthVoice]:
    """The voice of each of ``n`` sentences: drawn from ``voices`` by a generator seeded with
    ``seed`` (the same seed, the same voices; a longer corpus keeps the first choices).

    Raises:
        ValueError: no voices, or two voices with the same id (they would be one speaker).
    """
    if not voices:
        raise ValueError("voices: give at least one voice")
    ids = [v.id for v in voices]
    if len(set(ids)) != len(ids):
        raise ValueError(f"voices: each voice must differ in name, variant, pitch or rate: {ids}")
    if len(voices) == 1:
        return [voices[0]] * n
    rng = random.Random(f"voices:{seed}")
    return [voices[rng.randrange(len(voices))] for _ in range(n)]
