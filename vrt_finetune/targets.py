"""Grouped ``[P]``/``[W]`` target streams: a pure function of words, times and tokenizer ids.

The rule (paper §3.1 and §6.2, arXiv 2602.11298; ``docs/model_contract.md``): a word ending
at ``e`` seconds of speech is written at the first stream position whose audio context reaches
``e + τ``. Speech token ``j`` covers ``[j, j + 1) × 80 ms``, so a word needs the first
``w = ceil(e / 80 ms)`` speech tokens (its *write frame*, at least 1). With the prompt
``[BOS] + [P] × (L + d)`` the token of frame ``w`` sits at stream position ``L + d + w``: the
position before it has seen audio up to ``(d + w) × 80 ms ≥ e + τ``, and vLLM dates a ``[W]`` at
position ``p`` to ``(p - L - d) × 80 ms`` — the same rule read backwards.

Because ``d`` only shifts the whole stream, the stream stored in the shards is delay-independent:
``stream[i]`` is the token written at frame ``i + 1``; the training step places it after the
batch's prompt (:mod:`vrt_finetune.layout`).

Words whose write frames coincide form one group: one ``[W]``, then the group's text tokenized
as one run, one token per frame. ``[P]`` fills every other frame. Three choices are not settled by
the public sources (unverified, see ``docs/model_contract.md``) and are options here, with these
defaults:

* ``leading_space=True``: a group's text is tokenized as ``" " + text`` (so decoded groups
  concatenate into a normally spaced transcript).
* ``overrun="wait"``: when a group's tokens reach the next group's frame, the later group waits
  for the first free frame and keeps its own ``[W]``. ``"merge"`` instead folds the late group
  into the running one (one ``[W]``, the joined text re-tokenized as one run).
* ``eos=False``: nothing follows the last word but ``[P]``. With ``eos=True`` an end-of-stream
  token is written at the first free frame at or after the end of the audio.

All times are converted to integer samples before any frame arithmetic, so a word ending exactly
on a frame boundary (e.g. 0.16 s) lands on that frame, not the next one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from vrt_finetune import constants as C
from vrt_finetune.tokenizer import StreamIds

Overrun = Literal["wait", "merge"]


@dataclass(frozen=True)
class TargetOptions:
    """The switchable (UNVERIFIED) conventions of the target rule; see the module docstring."""

    leading_space: bool = True
    """Tokenize each group's text with a leading space."""
    overrun: Overrun = "wait"
    """What a group does when the previous group's tokens still occupy its frame."""
    eos: bool = False
    """Write an end-of-stream token after the last word and the end of the audio."""

    def __post_init__(self) -> None:
        if self.overrun not in ("wait", "merge"):
            raise ValueError(f"overrun must be 'wait' or 'merge', not {self.overrun!r}")


@dataclass(frozen=True)
class Group:
    """One ``[W]`` group: its write frame, where its tokens start, its words and its ids."""

    frame: int
    """Write frame ``w`` (1-based speech tokens needed) of the group's words."""
    start: int
    """Frame of the group's ``[W]`` (``>= frame``; larger when it waited)."""
    words: tuple[str, ...]
    ids: tuple[int, ...]
    """``[W]`` followed by the group's text tokens."""


@dataclass(frozen=True)
class Targets:
    """A delay-independent target stream. ``stream[i]`` is written at frame ``i + 1``."""

    stream: tuple[int, ...]
    groups: tuple[Group, ...]
    options: TargetOptions = field(default_factory=TargetOptions)

    def to_json(self) -> dict:
        """JSON-ready form stored in each shard sample."""
        return {
            "stream": list(self.stream),
            "groups": [
                {"frame": g.frame, "start": g.start, "words": list(g.words), "ids": list(g.ids)}
                for g in self.groups
            ],
            "options": asdict(self.options),
        }

    @classmethod
    def from_json(cls, data: dict) -> Targets:
        groups = tuple(
            Group(g["frame"], g["start"], tuple(g["words"]), tuple(g["ids"]))
            for g in data["groups"]
        )
        return cls(tuple(data["stream"]), groups, TargetOptions(**data["options"]))


def write_frame(end_seconds: float) -> int:
    """Frame at which a word ending at ``end_seconds`` can be written (>= 1).

    Integer samples first: ``0.16 / 0.08`` is ``2.0000000000000004`` in floats.
    """
    end_samples = C.seconds_to_samples(end_seconds)
    return max(1, C.samples_to_tokens_ceil(end_samples))


def build_targets(
    words: Sequence[str],
    ends: Sequence[float],
    n_speech_samples: int,
    encode: Callable[[str], list[int]],
    ids: StreamIds,
    options: TargetOptions | None = None,
) -> Targets:
    """Build the grouped ``[P]``/``[W]`` stream of one utterance.

    Args:
        words: the words as written (targets keep casing, punctuation and digits).
        ends: each word's end in seconds from the start of the utterance's audio; must not
            decrease.
        n_speech_samples: length of the utterance's audio (16 kHz samples); the stream covers
            at least every speech token of it.
        encode: text → token ids (no BOS/EOS), e.g. ``StreamingTokenizer.encode``.
        ids: the tokenizer's stream ids (``[P]``, ``[W]`` and EOS are used).
        options: the UNVERIFIED conventions (defaults documented above).

    Returns:
        ``Targets`` whose ``stream`` has one token per frame ``1 .. N``, ``N`` at least the
        number of speech tokens and at least the frame of the last written token.
    """
    options = options or TargetOptions()
    if len(words) != len(ends):
        raise ValueError(f"{len(words)} words but {len(ends)} end times")
    frames = [write_frame(e) for e in ends]
    if any(b < a for a, b in itertools.pairwise(frames)):
        raise ValueError("word end times must not decrease")

    # words sharing a write frame form one group: [(frame, [words])]
    grouped: list[tuple[int, list[str]]] = []
    for word, frame in zip(words, frames, strict=True):
        if grouped and grouped[-1][0] == frame:
            grouped[-1][1].append(word)
        else:
            grouped.append((frame, [word]))

    def tokens_of(group_words: list[str]) -> tuple[int, ...]:
        text = " ".join(group_words)
        return (ids.word, *encode(" " + text if options.leading_space else text))

    placed: list[Group] = []
    cursor = 1  # first free frame
    for frame, group_words in grouped:
        if options.overrun == "merge" and placed and frame < cursor:
            last = placed.pop()
            merged = [*last.words, *group_words]
            placed.append(Group(last.frame, last.start, tuple(merged), tokens_of(merged)))
        else:
            start = max(frame, cursor)
            placed.append(Group(frame, start, tuple(group_words), tokens_of(group_words)))
        cursor = placed[-1].start + len(placed[-1].ids)

    n_speech_tokens = C.samples_to_tokens_ceil(n_speech_samples)
    n_frames = max(cursor - 1, n_speech_tokens)
    eos_frame = max(cursor, n_speech_tokens + 1) if options.eos else None
    if eos_frame is not None:
        n_frames = eos_frame
    stream = [ids.pad] * n_frames
    for group in placed:
        stream[group.start - 1 : group.start - 1 + len(group.ids)] = group.ids
    if eos_frame is not None:
        stream[eos_frame - 1] = ids.eos
    return Targets(tuple(stream), tuple(placed), options)
