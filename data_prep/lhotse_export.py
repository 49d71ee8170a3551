"""A prepared dataset as a lhotse CutSet: ``vrt-prep export DIR --to lhotse --out OUT``.

Per split, ``OUT/cuts_{split}.jsonl.gz`` (``lhotse.CutSet.from_file`` reads it) with one
``MonoCut`` per shard sample: its recording is the sample's own FLAC, written out unchanged as
``OUT/recordings/{split}/KEY.flac`` (absolute paths, as lhotse's ``Recording.from_file``
writes them), and one supervision with the text, language, speaker and the word times as
``alignment["word"]`` (``AlignmentItem`` symbol, start, duration, score; relative to the
recording, which starts where the sample starts). What lhotse has no field for goes in the
supervision's ``custom``: the indices of flagged words (``flagged_words``), the sample's
``source`` and its ``offset`` in that source.

Each FLAC and each cuts file is written under a temporary name and renamed, so a rerun over an
interrupted export ends with the same files.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import soundfile as sf

from data_prep.dataset_reader import dataset_splits, iter_samples
from vrt_finetune.constants import SAMPLE_RATE
from vrt_finetune.io_utils import atomic_write_bytes
from vrt_finetune.shard_format import ShardSample

RECORDINGS_DIR = "recordings"


def cuts_file(out: str | Path, split: str) -> Path:
    """The CutSet manifest of one split in an export directory."""
    return Path(out) / f"cuts_{split}.jsonl.gz"


def sample_to_cut(sample: ShardSample, audio_path: Path, num_samples: int) -> Any:
    """One shard sample (and its FLAC written at ``audio_path``) as a lhotse ``MonoCut``."""
    from lhotse import AudioSource, MonoCut, Recording, SupervisionSegment
    from lhotse.supervision import AlignmentItem

    duration = num_samples / SAMPLE_RATE
    recording = Recording(
        id=sample.key,
        sources=[AudioSource(type="file", channels=[0], source=str(audio_path))],
        sampling_rate=SAMPLE_RATE,
        num_samples=num_samples,
        duration=duration,
    )
    # Shard times have 4 decimals: a duration rounded to 4 gives back the stored end exactly
    # (lhotse's AlignmentItem.end is round(start + duration, 8)).
    words = [
        AlignmentItem(w.word, w.start, round(w.end - w.start, 4), w.score) for w in sample.words
    ]
    supervision = SupervisionSegment(
        id=sample.key,
        recording_id=sample.key,
        start=0.0,
        duration=duration,
        channel=0,
        text=sample.text,
        language=sample.language,
        speaker=sample.speaker,
        alignment={"word": words},
        custom={
            "flagged_words": [i for i, w in enumerate(sample.words) if w.flagged],
            "source": sample.source,
            "offset": sample.offset,
        },
    )
    return MonoCut(
        id=sample.key,
        start=0.0,
        duration=duration,
        channel=0,
        recording=recording,
        supervisions=[supervision],
    )


def export_lhotse(root: str | Path, out: str | Path) -> dict[str, Path]:
    """Write every split of the dataset at ``root`` as a lhotse CutSet under ``out``.

    Args:
        root: A dataset directory written by ``vrt-prep run`` (with ``index.json``).
        out: The export directory (created).

    Returns:
        Split → its ``cuts_{split}.jsonl.gz``.

    Raises:
        ShardFormatError: no index at ``root``, or a shard that is missing or unreadable.
    """
    from lhotse import CutSet

    out = Path(out).resolve()
    written = {}
    for split, shards in dataset_splits(root).items():
        final = cuts_file(out, split)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name.removesuffix('.jsonl.gz')}.tmp.jsonl.gz")
        with CutSet.open_writer(tmp) as writer:
            for sample, flac in iter_samples(shards):
                audio_path = out / RECORDINGS_DIR / split / f"{sample.key}.flac"
                audio_path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(audio_path, flac)
                num_samples = sf.info(io.BytesIO(flac)).frames
                writer.write(sample_to_cut(sample, audio_path, num_samples))
        os.replace(tmp, final)
        written[split] = final
    return written
