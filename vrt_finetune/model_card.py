"""Rendering evaluation results: ``metrics.md``, the WER-by-delay plot and the model card.

Everything here reads the ``metrics.json`` structure that ``vrt-eval`` writes::

    {"meta": {"delays_ms": [...], "sets": {"domain": {...}, "general": {...}}, ...},
     "models": {NAME: {"path", "adapter", "domain": {"480": score, ...}, "general": {...}}}}

where each ``score`` is ``vrt_finetune.metrics.score``'s output (fractions, seconds). Tables show
percentages and milliseconds. The card is ``cards/model_card.md`` with ``string.Template``
placeholders; values that land in the YAML front matter are dumped with ``yaml`` so that any
name or path stays valid YAML.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from vrt_finetune import constants as C
from vrt_finetune.card_template import card_template
from vrt_finetune.io_utils import atomic_write_text
from vrt_finetune.shard_format import is_dataset_dir, read_index
from vrt_finetune.tokenizer import looks_like_hub_id

CARD_TEMPLATE = "model_card.md"
PLOT_FILE, REPORT_FILE, CARD_FILE = "wer_by_delay.png", "metrics.md", "README.md"
CARD_PLOT_FILE = "card_wer_by_delay.png"
"""The card's plot shows only its two models; ``metrics.md``'s shows all of them."""
DOMAIN, GENERAL = "domain", "general"

KEY_HYPERPARAMETERS = frozenset(
    {
        "base_model", "rank", "alpha", "dropout", "target_modules", "encoder", "decoder",
        "train_projector", "train_ada_norm", "train_embeddings", "lr", "weight_decay",
        "warmup_steps", "schedule", "max_steps", "total_steps", "batch_seconds",
        "accumulate_grad_batches", "precision", "z_loss_coef", "choices_ms", "seed",
        "encoder_warmup_steps", "max_duration_s",
    }
)  # fmt: skip
"""Last components of recipe keys the card lists (the rest stays in the recipe file)."""

DEFAULT_LIMITS = (
    "Scores come from greedy frame-synchronous decoding of whole utterances padded the offline "
    "way; a live stream sees the same audio, but not a different microphone, accent or domain.",
    "WER and CER are micro-averaged over the evaluation utterances after Whisper's English "
    "normaliser (basic normaliser for other languages); they are not comparable digit for "
    "digit with the paper's macro-averaged tables.",
    "Latency is read from when each word's `[W]` was written (80 ms resolution) against "
    "forced-alignment word ends; the word's remaining subword tokens follow one per 80 ms.",
    "Three details of the training targets are unverified against the released model "
    "(leading space, overrun rule, end-of-stream token); `vrt-eval --check_targets` measures "
    "which the base model prefers.",
    "Only the languages and domains listed here were evaluated.",
)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{1000 * x:.0f}"


def _delays(metrics: dict) -> list[int]:
    return [int(d) for d in metrics["meta"]["delays_ms"]]


def _get(metrics: dict, model: str, set_name: str, delay: int) -> dict | None:
    return metrics["models"][model].get(set_name, {}).get(str(delay))


def reference_delay(metrics: dict) -> int:
    """The delay detailed tables use: 480 ms (the official default) if evaluated, else the
    median evaluated delay."""
    delays = sorted(_delays(metrics))
    return C.DEFAULT_DELAY_MS if C.DEFAULT_DELAY_MS in delays else delays[len(delays) // 2]


def wer_table(metrics: dict, models: list[str] | None = None) -> str:
    """Markdown table: one row per (model, delay) with every headline metric."""
    models = models or list(metrics["models"])
    has_general = any(GENERAL in metrics["models"][m] for m in models)
    head = (
        "| model | delay (ms) | WER % | CER % | glossary recall % | latency mean/median/p90 (ms) |"
    )
    head += " general WER % |" if has_general else ""
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for m in models:
        for d in _delays(metrics):
            r = _get(metrics, m, DOMAIN, d)
            if r is None:
                continue
            gloss = (r.get("glossary") or {}).get("recall")
            lat = r["latency"]
            row = (
                f"| {m} | {d} | {_pct(r['wer'])} | {_pct(r['cer'])} | {_pct(gloss)} | "
                f"{_ms(lat['mean'])} / {_ms(lat['median'])} / {_ms(lat['p90'])} |"
            )
            if has_general:
                g = _get(metrics, m, GENERAL, d)
                row += f" {_pct(g['wer'] if g else None)} |"
            lines.append(row)
    return "\n".join(lines)


def forgetting_table(metrics: dict, baseline: str, models: list[str]) -> str | None:
    """General-set WER of ``models`` against ``baseline`` per delay; ``None`` without one."""
    if GENERAL not in metrics["models"].get(baseline, {}):
        return None
    others = [m for m in models if m != baseline and GENERAL in metrics["models"][m]]
    lines = [
        f"| delay (ms) | {baseline} WER % | " + " | ".join(f"{m} WER % (Δ)" for m in others) + " |",
        "|---|---|" + "---|" * len(others),
    ]
    for d in _delays(metrics):
        base = (_get(metrics, baseline, GENERAL, d) or {}).get("wer")
        cells = []
        for m in others:
            wer = (_get(metrics, m, GENERAL, d) or {}).get("wer")
            delta = "" if wer is None or base is None else f" ({100 * (wer - base):+.2f})"
            cells.append(_pct(wer) + delta)
        lines.append(f"| {d} | {_pct(base)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def language_table(metrics: dict) -> str:
    """Markdown table of WER/CER per language, model and delay (domain set)."""
    lines = [
        "| model | delay (ms) | language | utterances | WER % | CER % |",
        "|---|---|---|---|---|---|",
    ]
    for m in metrics["models"]:
        for d in _delays(metrics):
            for lang, r in ((_get(metrics, m, DOMAIN, d) or {}).get("by_language") or {}).items():
                lines.append(
                    f"| {m} | {d} | {lang} | {r['n_utterances']} | {_pct(r['wer'])} | "
                    f"{_pct(r['cer'])} |"
                )
    return "\n".join(lines)


def glossary_table(metrics: dict, delay: int, limit: int = 50) -> str | None:
    """Per-term hits of every model at ``delay`` (terms present in the references, most frequent
    first, at most ``limit``); ``None`` without a glossary."""
    models = list(metrics["models"])
    per_model = {m: ((_get(metrics, m, DOMAIN, delay) or {}).get("glossary") or {}) for m in models}
    terms = next((g["per_term"] for g in per_model.values() if g), None)
    if terms is None:
        return None
    present = sorted(
        (t for t, v in terms.items() if v["occurrences"]), key=lambda t: -terms[t]["occurrences"]
    )
    lines = ["| term | occurrences | " + " | ".join(f"{m} hits" for m in models) + " |"]
    lines.append("|---|---|" + "---|" * len(models))
    for t in present[:limit]:
        hits = [str(per_model[m]["per_term"][t]["hits"]) if per_model[m] else "-" for m in models]
        lines.append(f"| {t} | {terms[t]['occurrences']} | " + " | ".join(hits) + " |")
    missing = sum(not v["occurrences"] for v in terms.values())
    if missing:
        lines.append(f"\n{missing} glossary terms do not occur in the references.")
    return "\n".join(lines)


def plot_wer(metrics: dict, path: Path) -> Path:
    """PNG of WER (%) against delay, one colour per model; general set dashed. Reproducible:
    fixed size and dpi, no software/time metadata."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    delays = _delays(metrics)
    for i, model in enumerate(metrics["models"]):
        for set_name, style in ((DOMAIN, "-o"), (GENERAL, "--s")):
            points = [(d, (_get(metrics, model, set_name, d) or {}).get("wer")) for d in delays]
            points = [(d, 100 * w) for d, w in points if w is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                label = model if set_name == DOMAIN else f"{model} (general)"
                ax.plot(xs, ys, style, color=f"C{i}", label=label)
    ax.set_xlabel("transcription delay (ms)")
    ax.set_ylabel("WER (%)")
    ax.set_xticks(delays)
    ax.set_title("WER by delay")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def write_report(out_dir: Path, metrics: dict) -> dict[str, Path]:
    """Write ``metrics.md`` and ``wer_by_delay.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    plot = plot_wer(metrics, out_dir / PLOT_FILE)
    sets = metrics["meta"]["sets"]
    lines = ["# Evaluation", ""]
    for name, s in sets.items():
        lines.append(
            f"- {name}: {s['n_utterances']} utterances, {s['hours']:.3f} h, "
            f"languages {', '.join(s['languages'])} (`{' '.join(s['sources'])}`)"
        )
    lines += ["", wer_table(metrics), "", f"![WER by delay]({PLOT_FILE})", ""]
    models = list(metrics["models"])
    forgetting = forgetting_table(metrics, models[0], models)
    if forgetting:
        lines += ["## Forgetting (general set)", "", forgetting, ""]
    lines += ["## By language", "", language_table(metrics), ""]
    delay = reference_delay(metrics)
    gloss = glossary_table(metrics, delay)
    if gloss:
        lines += [f"## Glossary terms at {delay} ms", "", gloss, ""]
    lines += [
        "WER/CER: micro-averaged after text normalisation; glossary recall: Σ min(ref, hyp) "
        "term counts / Σ ref counts per utterance; latency: `[W]` emission − aligned word end "
        "(see `vrt_finetune/metrics.py`).",
    ]
    report = out_dir / REPORT_FILE
    atomic_write_text(report, "\n".join(lines) + "\n")
    return {"report": report, "plot": plot}


def recipe_summary(path: str | Path) -> dict:
    """``{"path": ..., dotted.key: value, ...}``: the recipe's key hyper-parameters (leaves whose
    last key is in :data:`KEY_HYPERPARAMETERS`)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    out: dict = {"path": str(path)}

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        elif prefix.rsplit(".", 1)[-1] in KEY_HYPERPARAMETERS:
            out[prefix] = node

    walk(data, "")
    return out


def dataset_label(source: str) -> str:
    """How ``model-index`` names an evaluation set: a hub id as it is; a local dataset by the
    name in its ``index.json`` (the recipe's ``name``), else by its file or directory name.
    Local absolute paths never reach the card: it is published with the model."""
    if looks_like_hub_id(source):
        return source
    path = Path(source).expanduser()
    name = read_index(path).get("name") if is_dataset_dir(path) else None
    return str(name or path.name.removesuffix(".jsonl") or source)


def _model_index(metrics: dict, model: str, name: str, dataset: str) -> list[dict]:
    results = []
    for set_name, ds in ((DOMAIN, dataset), (GENERAL, "general held-out set")):
        values = [
            {"type": kind, "value": round(100 * r[kind], 2), "name": f"{kind.upper()} @ {d} ms"}
            for d in _delays(metrics)
            if (r := _get(metrics, model, set_name, d))
            for kind in ("wer", "cer")
            if r[kind] is not None
        ]
        if values:
            results.append(
                {
                    "task": {"type": "automatic-speech-recognition", "name": "Speech Recognition"},
                    "dataset": {
                        "name": ds,
                        "type": ds,
                        "split": metrics["meta"]["sets"][set_name]["split"],
                    },
                    "metrics": values,
                }
            )
    return [{"name": name, "results": results}]


def _yaml_block(value: object) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=1000).rstrip("\n")


def render_model_card(
    out_dir: Path,
    metrics: dict,
    *,
    base_model: str,
    data_card: str | None,
    recipe: dict | None,
    model: str | None = None,
    baseline: str | None = None,
    name: str | None = None,
    dataset_name: str | None = None,
    license: str = "apache-2.0",
    limits: tuple[str, ...] = DEFAULT_LIMITS,
) -> Path:
    """Write the model card ``README.md`` (and the WER plot it shows) into ``out_dir``.

    Args:
        out_dir: where the card goes (typically the exported model or adapter directory).
        metrics: ``vrt-eval``'s ``metrics.json`` content.
        base_model: hub id (or path) of the model that was fine-tuned.
        data_card: link or path of the training data's card (``vrt-prep``'s ``README.md``).
        recipe: ``recipe_summary(...)``-style dict: ``path`` plus key hyper-parameters.
        model: the metrics' model the card describes (default: the last one).
        baseline: the model it is compared with (default: the first one, if another).
        name: title of the card (default: ``model``).
        dataset_name: evaluation set's name in ``model-index`` (default: the domain sources).
        license: front-matter licence (the base model's is Apache-2.0).
        limits: bullet points of the "Limits" section.

    Returns:
        path of the card.
    """
    out_dir = Path(out_dir)
    models = list(metrics["models"])
    model = model or models[-1]
    if model not in metrics["models"]:
        raise ValueError(f"no model {model!r} in the metrics (have {models})")
    baseline = baseline or (models[0] if models[0] != model else None)
    shown = [m for m in (baseline, model) if m]
    entry = metrics["models"][model]
    sets = metrics["meta"]["sets"]
    dataset_name = dataset_name or " + ".join(dataset_label(s) for s in sets[DOMAIN]["sources"])
    plot_wer(
        {**metrics, "models": {m: metrics["models"][m] for m in shown}}, out_dir / CARD_PLOT_FILE
    )
    delay = reference_delay(metrics)
    gloss = (_get(metrics, model, DOMAIN, delay) or {}).get("glossary")
    base_gloss = (
        (_get(metrics, baseline, DOMAIN, delay) or {}).get("glossary") if baseline else None
    )
    glossary_section = (
        "No glossary was given (`vrt-eval --glossary`)."
        if not gloss
        else f"At {delay} ms, {_pct(gloss['recall'])} % of {gloss['occurrences']} glossary-term "
        f"occurrences were transcribed exactly"
        + (f" ({_pct(base_gloss['recall'])} % for {baseline})." if base_gloss else ".")
    )
    forgetting = forgetting_table(metrics, baseline, shown) if baseline else None
    recipe = recipe or {}
    values = {
        "base_model_yaml": json.dumps(base_model),  # a JSON string is a valid YAML scalar
        "library_name": "peft" if entry.get("adapter") else "transformers",
        "license": license,
        "languages_yaml": _yaml_block(
            [lang for lang in sets[DOMAIN]["languages"] if lang != "unknown"] or ["multilingual"]
        ),
        "tags_yaml": _yaml_block(
            [
                "voxtral-realtime",
                "vrt-finetune",
                "streaming-asr",
                *(["lora"] if entry.get("adapter") else []),
            ]
        ),
        "model_index_yaml": _yaml_block(_model_index(metrics, model, name or model, dataset_name)),
        "name": name or model,
        "base_model": base_model,
        "data_card": f"[{data_card}]({data_card})" if data_card else "not given",
        "recipe_path": f"`{recipe['path']}`" if "path" in recipe else "not given",
        "recipe_table": "\n".join(
            [
                "| setting | value |",
                "|---|---|",
                *(f"| `{k}` | `{v}` |" for k, v in recipe.items() if k != "path"),
            ]
        )
        if len(recipe) > ("path" in recipe)
        else "",
        "eval_sets": "\n".join(
            f"- {n}: {s['n_utterances']} utterances ({s['hours']:.3f} h), "
            f"`{' '.join(s['sources'])}` split `{s['split']}`"
            for n, s in sets.items()
        ),
        "wer_table": wer_table(metrics, shown),
        "plot": CARD_PLOT_FILE,
        "glossary_section": glossary_section,
        "forgetting_section": forgetting
        or "No general held-out set was evaluated (`vrt-eval --general`): forgetting unmeasured.",
        "limits": "\n".join(f"- {x}" for x in limits),
    }
    text = card_template(CARD_TEMPLATE).substitute(values)
    path = out_dir / CARD_FILE
    atomic_write_text(path, text)
    return path
