"""How good a dataset's word times are: boundary errors against reference times.

``vrt-prep score --reference REF DIR`` calls :func:`score_alignments` and :func:`write_report`.
The reference is another shard directory, a CTM file (utterance ids = sample keys), a JSON file
mapping each key to a whisperX result, or a folder of per-key ``KEY.TextGrid``, ``KEY.json``
(whisperX) or ``KEY.ctm`` files. Words of a sample are paired with the reference's by a
longest-matching-blocks alignment of their spellings (case and punctuation ignored); unpaired
reference words are *missing*, unpaired hypothesis words *extra*.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_prep.align.base import AlignedWord
from data_prep.align.given import _key, read_ctm, read_textgrid, read_whisperx_json
from data_prep.dataset_reader import read_samples
from vrt_finetune.shard_format import ShardSample, is_dataset_dir

TOLERANCES_MS = (20, 50, 100)
"""Boundary error thresholds the report gives the share of boundaries within."""
UNKNOWN_SPEAKER = "(unknown)"


class KeyMismatchError(ValueError):
    """The reference does not cover the samples being scored."""


@dataclass
class BoundaryStats:
    """Boundary errors of one group of samples (a speaker, or all)."""

    samples: int = 0
    matched: int = 0
    """Words paired with a reference word."""
    missing: int = 0
    """Reference words the hypothesis lacks."""
    extra: int = 0
    """Hypothesis words the reference lacks."""
    start_errors: list[float] = field(default_factory=list, repr=False)
    """Signed start error (hypothesis − reference, seconds) per matched word."""
    end_errors: list[float] = field(default_factory=list, repr=False)
    """Signed end error per matched word."""

    def add(self, other: BoundaryStats) -> None:
        """Fold another group's counts and errors into this one."""
        self.samples += other.samples
        self.matched += other.matched
        self.missing += other.missing
        self.extra += other.extra
        self.start_errors += other.start_errors
        self.end_errors += other.end_errors

    def summary(self) -> dict[str, float | int | None]:
        """Counts, mean/median absolute start and end error (ms), share within each tolerance.

        Shares pool start and end boundaries; errors are ``None`` when nothing matched.
        """
        out: dict[str, float | int | None] = {
            "samples": self.samples,
            "matched": self.matched,
            "missing": self.missing,
            "extra": self.extra,
        }
        starts, ends = np.abs(self.start_errors), np.abs(self.end_errors)
        for name, err in (("start", starts), ("end", ends)):
            out[f"mean_{name}_ms"] = float(err.mean() * 1000) if err.size else None
            out[f"median_{name}_ms"] = float(np.median(err) * 1000) if err.size else None
        both = np.concatenate([starts, ends])
        for ms in TOLERANCES_MS:
            out[f"within_{ms}ms"] = float((both <= ms / 1000 + 1e-9).mean()) if both.size else None
        return out


@dataclass
class ScoreReport:
    """Boundary errors of a dataset against a reference, overall and per speaker."""

    hypothesis: str
    reference: str
    overall: BoundaryStats
    per_speaker: dict[str, BoundaryStats]
    unscored_reference_keys: list[str] = field(default_factory=list)
    """Reference keys without a sample (items the dataset rejected)."""

    def to_json(self) -> dict:
        """Summaries only (no per-word errors): what ``score.json`` holds."""
        return {
            "hypothesis": self.hypothesis,
            "reference": self.reference,
            "overall": self.overall.summary(),
            "per_speaker": {s: st.summary() for s, st in sorted(self.per_speaker.items())},
            "unscored_reference_keys": self.unscored_reference_keys,
        }


def _shard_words(sample: ShardSample) -> list[AlignedWord]:
    return [AlignedWord(w.word, w.start, w.end, w.score, w.flagged) for w in sample.words]


def load_reference(reference: str | Path) -> dict[str, list[AlignedWord]]:
    """Reference word times per sample key.

    Args:
        reference: A shard directory, a ``.ctm`` file, a ``.json`` file ``{key: whisperX
            result}``, or a folder of ``KEY.TextGrid`` / ``KEY.json`` / ``KEY.ctm`` files.

    Returns:
        Key → words in time order.

    Raises:
        ValueError: a path of none of these kinds.
    """
    path = Path(reference)
    if path.is_dir() and is_dataset_dir(path):
        return {s.key: _shard_words(s) for split in read_samples(path).values() for s in split}
    if path.is_file() and path.suffix.lower() == ".ctm":
        return read_ctm(path)
    if path.is_file() and path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): read_whisperx_json(v) for k, v in data.items()}
    if path.is_dir():
        out: dict[str, list[AlignedWord]] = {}
        for file in sorted(path.iterdir()):
            suffix = file.suffix.lower()
            if suffix == ".textgrid":
                out[file.stem] = read_textgrid(file)
            elif suffix == ".json":
                out[file.stem] = read_whisperx_json(file)
            elif suffix == ".ctm":
                out.update(read_ctm(file))
        if out:
            return out
    raise ValueError(
        f"{path}: not a reference this scorer reads (a shard directory, a .ctm file, a .json "
        "file {key: whisperX result}, or a folder of KEY.TextGrid / KEY.json / KEY.ctm)"
    )


def score_words(hyp: list[AlignedWord], ref: list[AlignedWord]) -> BoundaryStats:
    """Pair one sample's words with the reference's and measure their boundary errors."""
    matcher = difflib.SequenceMatcher(
        a=[_key(w.word) for w in hyp], b=[_key(w.word) for w in ref], autojunk=False
    )
    stats = BoundaryStats(samples=1)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            h, r = hyp[block.a + k], ref[block.b + k]
            stats.start_errors.append(h.start - r.start)
            stats.end_errors.append(h.end - r.end)
    stats.matched = len(stats.start_errors)
    stats.missing = len(ref) - stats.matched
    stats.extra = len(hyp) - stats.matched
    return stats


def _check_keys(hyp_keys: Iterable[str], reference: Mapping[str, object], where: str) -> None:
    absent = sorted(set(hyp_keys) - set(reference))
    if absent:
        shown = ", ".join(absent[:10]) + (f" … ({len(absent)} in all)" if len(absent) > 10 else "")
        known = ", ".join(sorted(reference)[:5]) or "none"
        raise KeyMismatchError(
            f"the reference {where} has no times for sample keys {shown}; its keys are e.g. "
            f"{known}. Reference keys must be the dataset's sample keys"
        )


def score_alignments(hyp_dir: str | Path, reference: str | Path) -> ScoreReport:
    """Compare a dataset's word times with reference times.

    Args:
        hyp_dir: The shard directory whose word times are scored.
        reference: Reference times (see :func:`load_reference`).

    Returns:
        Matched, missing and extra words and boundary errors, overall and per speaker.

    Raises:
        KeyMismatchError: a sample key has no reference times (the message names them).
        ShardFormatError: ``hyp_dir`` is not a readable dataset directory.
    """
    samples = [s for split in read_samples(hyp_dir).values() for s in split]
    ref = load_reference(reference)
    _check_keys((s.key for s in samples), ref, str(reference))
    overall, per_speaker = BoundaryStats(), {}
    for sample in samples:
        stats = score_words(_shard_words(sample), ref[sample.key])
        overall.add(stats)
        per_speaker.setdefault(sample.speaker or UNKNOWN_SPEAKER, BoundaryStats()).add(stats)
    scored = {s.key for s in samples}
    return ScoreReport(
        str(hyp_dir), str(reference), overall, per_speaker, sorted(set(ref) - scored)
    )


def _markdown(report: ScoreReport) -> str:
    columns = ["samples", "matched", "missing", "extra", "mean_start_ms", "median_start_ms"]
    columns += ["mean_end_ms", "median_end_ms"] + [f"within_{ms}ms" for ms in TOLERANCES_MS]
    rows = [("**all**", report.overall), *sorted(report.per_speaker.items())]
    lines = [
        f"# Word boundary errors: `{report.hypothesis}` against `{report.reference}`",
        "",
        "Errors are |hypothesis − reference| per boundary; shares pool starts and ends.",
        "",
        "| speaker | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, stats in rows:
        summary = stats.summary()
        cells = []
        for column in columns:
            value = summary[column]
            cells.append(
                "–" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if report.unscored_reference_keys:
        n = len(report.unscored_reference_keys)
        lines += ["", f"{n} reference keys have no sample (rejected items) and are not scored."]
    return "\n".join(lines) + "\n"


def write_report(report: ScoreReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``score.json``, ``score.md`` and ``score_hist.png`` (signed error histogram).

    Returns:
        ``{"json": …, "markdown": …, "histogram": …}`` paths.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "score.json", "markdown": out / "score.md"}
    paths["histogram"] = out / "score_hist.png"
    paths["json"].write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
    paths["markdown"].write_text(_markdown(report), encoding="utf-8")
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    bins = np.linspace(-200, 200, 81)
    for name, errors in (
        ("start", report.overall.start_errors),
        ("end", report.overall.end_errors),
    ):
        clipped = np.clip(np.asarray(errors) * 1000, bins[0], bins[-1])
        ax.hist(clipped, bins=bins, alpha=0.6, label=f"{name} ({len(errors)} words)")
    ax.set_xlabel("hypothesis − reference (ms), clipped to ±200")
    ax.set_ylabel("words")
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths["histogram"])
    plt.close(fig)
    return paths
