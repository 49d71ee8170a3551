"""A static HTML page to look at a prepared dataset's alignments (``vrt-prep inspect DIR``).

One self-contained file that opens from disk: per split a table of a deterministic sample of
the data (duration, speaker, words/s, flagged words, mean alignment score); for the sample
picked, its audio, waveform and spectrogram with each word's span drawn and labelled (flagged
words in red), a cursor that follows playback, and the ``[P]``/``[W]`` target strip on the
80 ms grid at a delay the reader picks; the rejected items by reason with their messages; and
filters by split, reason, flagged words, speaker and text. wavesurfer.js 7 (BSD-3-Clause) and
its regions, timeline and spectrogram plugins are package data (``data_prep/assets``) inlined
into the page. Audio is embedded as Ogg/Opus (FLAC where libsndfile has no Opus), up to a
budget of seconds, so the page stays a few MB whatever the corpus size.
"""

from __future__ import annotations

import base64
import html
import io
import json
import random
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from data_prep.dataset_reader import dataset_splits, iter_samples, read_rejects
from vrt_finetune import constants as C
from vrt_finetune.io_utils import atomic_write_text
from vrt_finetune.shard_format import (
    INDEX_FILE,
    SUMMARY_FILE,
    ShardFormatError,
    ShardSample,
    decode_flac,
    read_index,
)

PAGE_FILE = "inspect.html"
"""Default page name, inside the dataset directory."""
SCRIPTS = (
    "wavesurfer.min.js",
    "wavesurfer.regions.min.js",
    "wavesurfer.timeline.min.js",
    "wavesurfer.spectrogram.min.js",
    "inspect.js",
)
"""Page scripts in load order (the plugins attach themselves to the global ``WaveSurfer``)."""
STYLE = "inspect.css"
ASSET_MARKERS = {"inspect.js": "vrt-data", STYLE: "body"}
"""Text each asset must hold (wavesurfer's files: ``WaveSurfer``): catches a truncated or
swapped file before it is inlined into a page that would then fail silently in the browser."""


class PageAssetError(RuntimeError):
    """A script or style the page inlines is missing or damaged in the installed package."""


def _asset(name: str) -> str:
    """The text of one page asset, checked to be what the page expects."""
    path = resources.files("data_prep.assets") / name
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError, OSError) as err:
        raise PageAssetError(
            f"page asset {name} is missing or unreadable in {path} ({err}); reinstall "
            "vrt-finetune (pip install --force-reinstall) to restore data_prep/assets"
        ) from err
    marker = ASSET_MARKERS.get(name, "WaveSurfer")
    if marker not in text or "</script" in text.lower():
        raise PageAssetError(
            f"page asset {name} at {path} is damaged (no {marker!r} in it, or a closing script "
            "tag that would break inlining); reinstall vrt-finetune to restore data_prep/assets"
        )
    return text


def _encode_audio(audio: np.ndarray) -> str:
    """A ``data:`` URL of the audio: Ogg/Opus (~28 kbit/s), else FLAC.

    libsndfile gives each Ogg stream a random serial number, so pages of the same data list the
    same samples but differ in these bytes.
    """
    buf = io.BytesIO()
    try:
        sf.write(buf, audio, C.SAMPLE_RATE, format="OGG", subtype="OPUS")
        mime = "audio/ogg"
    except (sf.LibsndfileError, ValueError, TypeError):  # libsndfile built without Opus
        buf = io.BytesIO()
        sf.write(buf, audio, C.SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        mime = "audio/flac"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def _frame_kinds(sample: ShardSample) -> tuple[list[str], list[int | None]]:
    """Per frame of the target stream: ``W``, ``T`` (a group's text token), ``P`` or ``E``.

    Also the index of the group each frame belongs to (``None`` outside groups). Frames no
    group covers hold ``[P]``, whose id is the most common id there; any other id there is
    the end-of-stream token (``targets.eos``).
    """
    stream = sample.targets.stream
    kinds: list[str] = ["P"] * len(stream)
    group_of: list[int | None] = [None] * len(stream)
    for g, group in enumerate(sample.targets.groups):
        for k in range(len(group.ids)):
            i = group.start - 1 + k  # frames are 1-based
            if i < len(stream):
                kinds[i], group_of[i] = ("W" if k == 0 else "T"), g
    free = Counter(t for t, kind in zip(stream, kinds, strict=True) if kind == "P")
    if free:
        pad = free.most_common(1)[0][0]
        kinds = [
            "E" if kind == "P" and t != pad else kind for t, kind in zip(stream, kinds, strict=True)
        ]
    return kinds, group_of


def _sample_record(sample: ShardSample, split: str) -> dict[str, Any]:
    """What the page's script needs of one sample (audio added later, within the budget)."""
    words = [[w.word, w.start, w.end, w.score, w.flagged] for w in sample.words]
    kinds, group_of = _frame_kinds(sample)
    placed = [w.score for w in sample.words if not w.flagged]
    return {
        "key": sample.key,
        "split": split,
        "text": sample.text,
        "speaker": sample.speaker,
        "duration": sample.duration,
        "words_per_second": len(words) / sample.duration if sample.duration > 0 else 0.0,
        "n_flagged": sum(w.flagged for w in sample.words),
        "mean_score": float(np.mean(placed)) if placed else None,
        "words": words,
        "stream": list(sample.targets.stream),
        "kinds": kinds,
        "group_of": group_of,
        "groups": [
            {"frame": g.frame, "start": g.start, "words": list(g.words)}
            for g in sample.targets.groups
        ],
        "audio": None,
    }


def _pick(keys: list[str], split: str, per_split: int, seed: int) -> list[str]:
    """Up to ``per_split`` of a split's sample keys, chosen by ``seed`` alone, in index order."""
    if len(keys) <= per_split:
        return keys
    chosen = set(random.Random(f"{seed}:{split}").sample(keys, per_split))
    return [k for k in keys if k in chosen]


def collect_page_data(
    dataset_dir: str | Path, per_split: int = 200, seed: int = 0, max_audio_seconds: float = 600.0
) -> dict[str, Any]:
    """Everything the page shows, as the JSON its script reads.

    Only the shards holding a chosen sample are read. Audio is embedded for the chosen samples
    taken in turn from each split (first of each split, then second …) until the next one would
    pass ``max_audio_seconds``.

    Raises:
        ShardFormatError: not a dataset directory, no shards, or an unreadable shard.
    """
    root = Path(dataset_dir)
    splits = dataset_splits(root)
    index = read_index(root)
    out_splits, flacs = [], {}
    for split, shards in splits.items():
        keys = {p: _shard_keys(index, root, p) for p in shards}
        wanted = set(_pick([k for p in shards for k in keys[p]], split, per_split, seed))
        needed = [p for p in shards if wanted.intersection(keys[p])]
        records = []
        for sample, flac in iter_samples(needed):
            if sample.key in wanted:
                records.append(_sample_record(sample, split))
                flacs[sample.key] = flac
        total = sum(len(k) for k in keys.values())
        out_splits.append({"name": split, "total": total, "samples": records})
    budget = max_audio_seconds
    rounds = max((len(s["samples"]) for s in out_splits), default=0)
    for i in range(rounds):
        for split in out_splits:
            if i < len(split["samples"]) and split["samples"][i]["duration"] <= budget:
                record = split["samples"][i]
                record["audio"] = _encode_audio(decode_flac(flacs[record["key"]]))
                budget -= record["duration"]
    summary_path = root / SUMMARY_FILE
    summary = json.loads(summary_path.read_text("utf-8")) if summary_path.is_file() else {}
    rejects = read_rejects(root)
    by_reason = summary.get("rejects_by_reason") or dict(Counter(r["reason"] for r in rejects))
    return {
        "dataset": str(root),
        "splits": out_splits,
        "rejects": rejects,
        "rejects_by_reason": by_reason,
        "token_ms": C.TOKEN_MS,
        "min_delay_ms": C.MIN_DELAY_MS,
        "max_delay_ms": C.MAX_DELAY_MS,
        "default_delay_ms": C.DEFAULT_DELAY_MS,
    }


def _shard_keys(index: dict, root: Path, shard: Path) -> list[str]:
    name = shard.relative_to(root).as_posix()
    return next((s.get("samples", []) for s in index.get("shards", []) if s["name"] == name), [])


def render_page(data: dict[str, Any]) -> str:
    """The page's HTML: styles, the data block and every script inlined."""
    scripts = "\n".join(f"<script>\n{_asset(name)}\n</script>" for name in SCRIPTS)
    # "</" inside the JSON would end its script element early.
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    title = html.escape(f"vrt-prep inspection: {data['dataset']}")
    counts = ", ".join(f"{s['name']} {len(s['samples'])}/{s['total']}" for s in data["splits"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
{_asset(STYLE)}
</style></head>
<body>
<h1>{title}</h1>
<p>Samples shown per split (chosen, of all): {html.escape(counts)}. Click a row to see its
audio, word spans (red: flagged, i.e. interpolated or guessed) and [P]/[W] targets.</p>
<div id="filters">
<label>split <select id="split"><option value="">all</option></select></label>
<label>speaker <select id="speaker"><option value="">all</option></select></label>
<label>reject reason <select id="reason"><option value="">all</option></select></label>
<label><input type="checkbox" id="flagged"> flagged words only</label>
<label>search <input type="search" id="q" placeholder="text or key"></label>
</div>
<section id="detail"></section>
<section id="samples" class="samples-box"></section>
<section id="rejects"></section>
<script type="application/json" id="vrt-data">{payload}</script>
{scripts}
</body></html>
"""


def write_inspection_page(
    dataset_dir: str | Path,
    out_html: str | Path | None = None,
    per_split: int = 200,
    seed: int = 0,
    max_audio_seconds: float = 600.0,
) -> Path:
    """Write the inspection page of a prepared dataset.

    Args:
        dataset_dir: The ``vrt-prep`` output directory (``index.json`` and split shards).
        out_html: Where to write the page; ``None``: ``DIR/inspect.html``.
        per_split: At most this many samples of each split are listed (chosen by ``seed``).
        seed: The same seed lists the same samples.
        max_audio_seconds: Seconds of audio embedded in all (about 4.7 kB per second as
            base64 Opus); samples past it are listed with their words and targets only.

    Returns:
        The page's path.

    Raises:
        ShardFormatError: ``dataset_dir`` holds no prepared dataset or no shards.
        PageAssetError: a page script or style is missing or damaged in the installation.
    """
    root = Path(dataset_dir)
    if not (root / INDEX_FILE).is_file():
        raise ShardFormatError(
            f"{root}: no {INDEX_FILE}, so no prepared dataset to inspect; point "
            "`vrt-prep inspect` at the output directory of `vrt-prep run`"
        )
    if per_split < 1:
        raise ValueError(f"per_split must be >= 1, got {per_split}")
    page = render_page(collect_page_data(root, per_split, seed, max_audio_seconds))
    out = Path(out_html) if out_html is not None else root / PAGE_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, page)
    return out
