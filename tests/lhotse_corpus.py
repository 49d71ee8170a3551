"""A small lhotse corpus of espeak-ng speech, written with lhotse's own writers, and a JSONL
manifest that says the same thing (the reference the lhotse source must agree with).

Two recordings: ``rec_a.wav`` (mono) holds two sentences, one supervision each, in one cut;
``rec_b.wav`` (stereo) holds a different sentence on each channel, one cut per channel. Each
supervision is a window of its recording with some silence around the speech, and carries its
words' times (espeak-ng's own) as ``alignment["word"]``, relative to the recording as lhotse
keeps them. The manifest names the same windows (``start``/``end``) of the same recordings
(``recording``: their windows share a split), the same words (a CTM, relative to each window)
and, for the stereo channels, mono files holding each channel's samples. All times lie on a
1/64 s grid, exact in binary, so both routes compute equal floats.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.synth import synthesize

GRID = 64
"""Times are multiples of 1/GRID s (exact binary fractions)."""
SR = 16_000
MARGIN = 0.25
"""Silence inside each supervision before and after its speech, seconds."""

# (recording, channel, at seconds, speaker, text)
UTTERANCES = (
    ("rec_a", 0, 0.5, "alice", "The heart rate is normal."),
    ("rec_a", 0, 3.5, "alice", "Please call the nurse."),
    ("rec_b", 0, 0.5, "bob", "Take two tablets daily."),
    ("rec_b", 1, 1.0, None, "The patient is resting now."),
)


def grid(t: float) -> float:
    """``t`` on the 1/GRID s grid."""
    return round(t * GRID) / GRID


@dataclass
class Corpus:
    """What :func:`make_corpus` wrote."""

    root: Path
    cuts: object
    """The ``lhotse.CutSet`` (eager) written to ``cuts.jsonl.gz`` and ``shar/``."""
    cutset_path: Path
    shar_dir: Path
    manifest: Path
    """The equivalent JSONL manifest."""


def make_corpus(root: Path) -> Corpus:
    """Write the recordings, ``cuts.jsonl.gz``, a Shar directory and the equivalent manifest."""
    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
    from lhotse.supervision import AlignmentItem

    root.mkdir(parents=True, exist_ok=True)
    spoken = [synthesize(text) for *_, text in UTTERANCES]
    length = {"rec_a": 7.0, "rec_b": 4.5}
    channels = {"rec_a": 1, "rec_b": 2}
    audio = {r: np.zeros((round(length[r] * SR), channels[r]), np.float32) for r in length}
    for (rec, ch, at, *_), utt in zip(UTTERANCES, spoken, strict=True):
        first = round(at * SR)
        audio[rec][first : first + len(utt.audio), ch] = utt.audio
    for rec, samples in audio.items():
        sf.write(root / f"{rec}.wav", samples, SR, subtype="PCM_16")
        for ch in range(samples.shape[1]):  # what the manifest names for one channel
            sf.write(root / f"{rec}_ch{ch}.wav", samples[:, ch], SR, subtype="PCM_16")
    recordings = {r: Recording.from_file(root / f"{r}.wav") for r in audio}

    supervisions: dict[tuple[str, int], list] = {}
    rows, ctm = [], []
    for n, ((rec, ch, at, speaker, text), utt) in enumerate(zip(UTTERANCES, spoken, strict=True)):
        sup_id = f"{rec}-{n}"
        start = at - MARGIN
        duration = grid(len(utt.audio) / SR + 2 * MARGIN)
        words = []
        for w in utt.words:
            w_start = grid(w.start)
            w_end = max(grid(w.end), w_start + 1 / GRID)
            words.append(AlignmentItem(w.word, at + w_start, w_end - w_start))
            ctm.append(f"{sup_id} 1 {at + w_start - start!r} {w_end - w_start!r} {w.word}")
        supervisions.setdefault((rec, ch), []).append(
            SupervisionSegment(
                id=sup_id,
                recording_id=rec,
                start=start,
                duration=duration,
                channel=ch,
                text=text,
                language="en",
                speaker=speaker,
                alignment={"word": words},
            )
        )
        audio_file = f"{rec}.wav" if channels[rec] == 1 else f"{rec}_ch{ch}.wav"
        row = {"audio": audio_file, "recording": rec, "text": text, "id": sup_id}
        row["language"] = "en"
        row |= {"start": start, "end": start + duration, "alignment": "words.ctm"}
        rows.append(row | ({"speaker": speaker} if speaker else {}))
    (root / "words.ctm").write_text("\n".join(ctm) + "\n")
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))

    cuts = CutSet.from_cuts(
        MonoCut(
            id=rec if channels[rec] == 1 else f"{rec}_ch{ch}",
            start=0.0,
            duration=recordings[rec].duration,
            channel=ch,
            recording=recordings[rec],
            supervisions=sups,
        )
        for (rec, ch), sups in supervisions.items()
    )
    cuts.to_file(root / "cuts.jsonl.gz")
    (root / "shar").mkdir()
    cuts.to_shar(root / "shar", fields={"recording": "flac"}, shard_size=2)
    return Corpus(root, cuts, root / "cuts.jsonl.gz", root / "shar", manifest)
