"""The dataset card: rendered from ``cards/dataset_card.md`` with the run's own figures."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from pathlib import Path

from data_prep.unit_result import UnitResult
from vrt_finetune.card_template import card_template
from vrt_finetune.io_utils import atomic_write_text
from vrt_finetune.shard_format import CARD_FILE, SPLITS

CARD_TEMPLATE = "dataset_card.md"
HIGH_FERTILITY = 2.5
"""Text tokens per word above which the card warns: the tokenizer splits this language into
many pieces, so each word costs many 80 ms frames and groups overrun more often — the signal a
new-language team needs (consider training the embeddings, or a larger delay)."""
SPLIT_NOTES = {
    "speaker": "unknown speakers are split by recording, else by sample key",
    "recording": "samples are split by recording, speakers ignored: a speaker can be in several "
    "splits",
    "key": "samples are split by key, speakers ignored: a speaker can be in several splits",
}
"""What the card says of ``shards.split_by`` beside the speaker count."""


def glossary_coverage(texts: list[str], terms: list[str]) -> list[tuple[str, int]]:
    """Occurrences of each term (case-insensitive, whole words) in the kept transcripts."""
    joined = "\n".join(texts).lower()
    return [(t, len(re.findall(rf"(?<!\w){re.escape(t.lower())}(?!\w)", joined))) for t in terms]


def _score_section(score: dict | None) -> str:
    """The word-boundary figures against reference times, as the card shows them."""
    if not score:
        return (
            "Word boundaries were not scored against reference times (give the recipe a "
            "`reference`, or run `vrt-prep score DIR --reference REF`)."
        )
    o = score["overall"]
    if not o["matched"]:
        return f"No word matched the reference `{score['reference']}`."
    return (
        f"Against reference times ({score['reference']}): {o['matched']} words matched, "
        f"{o['missing']} missing, {o['extra']} extra; mean error {o['mean_start_ms']:.0f} ms "
        f"(starts) / {o['mean_end_ms']:.0f} ms (ends), median {o['median_start_ms']:.0f} / "
        f"{o['median_end_ms']:.0f} ms; {100 * o['within_20ms']:.0f} % of boundaries within "
        f"20 ms, {100 * o['within_50ms']:.0f} % within 50 ms, {100 * o['within_100ms']:.0f} % "
        "within 100 ms (details in `score/`)."
    )


def _histogram(durations: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(durations or [0.0], bins=30, color="#4c72b0")
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("samples")
    ax.set_title("Sample durations")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})  # no timestamp: reproducible
    plt.close(fig)


def render_card(
    out_dir: Path,
    results: list[UnitResult],
    summary: dict,
    *,
    name: str,
    aligner: str,
    target_options: dict,
    glossary: list[str] | None = None,
    alignment_score: dict | None = None,
    split_by: str = "speaker",
) -> Path:
    """Write the card (``README.md``) and ``duration_histogram.png`` into ``out_dir``.

    Args:
        alignment_score: ``vrt-prep score``'s overall figures against the recipe's
            ``reference`` (``ScoreReport.to_json()``), shown under "Alignment coverage".
        split_by: the recipe's ``shards.split_by`` (``speaker``, ``recording`` or ``key``),
            said beside the speaker count.
    """
    samples = [s for r in results for s in r.samples]
    durations = [s["seconds"] for s in samples]
    _histogram(durations, out_dir / "duration_histogram.png")
    n_words = sum(s["words"] for s in samples)
    flagged = sum(s["flagged"] for s in samples)
    tokens = sum(s["tokens"] for s in samples)
    fertility = tokens / n_words if n_words else 0.0
    languages = sorted({s["language"] for s in samples}) or ["unknown"]
    rejects = summary["rejects_by_reason"]
    rejects_table = (
        "None."
        if not rejects
        else "\n".join(
            ["| reason | items |", "|---|---|", *(f"| {k} | {v} |" for k, v in rejects.items())]
        )
    )
    if glossary:
        cov = glossary_coverage([s["text"] for s in samples], glossary)
        present = sum(n > 0 for _, n in cov)
        glossary_section = "\n".join(
            [
                f"{present} of {len(cov)} glossary terms occur in the kept transcripts.",
                "",
                "| term | occurrences |",
                "|---|---|",
                *(f"| {t} | {n} |" for t, n in cov),
            ]
        )
    else:
        glossary_section = "No glossary given (`glossary:` in the recipe)."
    by_split = Counter(s["split"] for s in samples)
    values = {
        "name": name,
        "languages": ", ".join(languages),
        "languages_yaml": "\n".join(f"- {lang}" for lang in languages),
        **{f"n_{sp}": by_split.get(sp, 0) for sp in SPLITS},
        **{f"h_{sp}": f"{summary['hours_by_split'][sp]:.3f}" for sp in SPLITS},
        "n_speakers": len({s["speaker"] for s in samples if s["speaker"]}),
        "split_note": SPLIT_NOTES[split_by],
        "aligner": aligner,
        "target_options": target_options,
        "items": summary["items"],
        "input_hours": f"{summary['input_hours']:.3f}",
        "kept": summary["kept_samples"],
        "rejected": summary["rejected"],
        "mean_duration": f"{statistics.fmean(durations):.2f}" if durations else "-",
        "median_duration": f"{statistics.median(durations):.2f}" if durations else "-",
        "max_duration": f"{max(durations):.2f}" if durations else "-",
        "aligned_pct": f"{100 * (1 - flagged / n_words):.1f}" if n_words else "-",
        "n_words": n_words,
        "flagged": flagged,
        "rejects_table": rejects_table,
        "fertility": f"{fertility:.2f}",
        "fertility_verdict": f"HIGH: above {HIGH_FERTILITY}, see the note in data_prep/card.py"
        if fertility > HIGH_FERTILITY
        else "normal",
        "glossary_section": glossary_section,
        "alignment_score_section": _score_section(alignment_score),
    }
    text = card_template(CARD_TEMPLATE).substitute(values)
    path = out_dir / CARD_FILE
    atomic_write_text(path, text)
    return path
