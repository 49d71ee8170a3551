"""``vrt-prep``: audio + transcripts → aligned ``[P]``/``[W]`` WebDataset shards.

    vrt-prep run --config recipes/data/medical.yaml [key.sub=value ...] [--rank R --world-size W]
    vrt-prep merge --output DIR      # after a multi-machine run: index, summary and card

A rerun with the same recipe skips finished work units; a run killed at any point and started
again ends with the same shards as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from data_prep.card import render_card
from data_prep.config import PrepConfig, load_config
from data_prep.pipeline import rank_and_world, run_units
from data_prep.report import format_summary, load_unit_results, merge, with_progress
from data_prep.sources import (
    SourceItem,
    read_folder,
    read_hf_dataset,
    read_manifest,
    synthetic_items,
)
from vrt_finetune.io_utils import atomic_write_text

RUN_CONFIG = "prep_config.json"


def read_items(config: PrepConfig) -> list[SourceItem]:
    s = config.source
    if s.kind == "manifest":
        return list(read_manifest(s.path, s.language))
    if s.kind == "folder":
        return list(read_folder(s.path, s.language))
    if s.kind == "hf":
        return list(
            read_hf_dataset(
                s.path,
                s.split,
                s.audio_column,
                s.text_column,
                s.language_column,
                s.speaker_column,
                s.language,
                s.config_name,
            )
        )
    return list(synthetic_items(s.n_general, s.n_medical, s.seed))


def finish(out_dir: Path, config: PrepConfig) -> dict:
    """Index, summary and dataset card from every unit marker."""
    _, summary = merge(out_dir, {"name": config.name, "tokenizer": str(config.tokenizer)})
    glossary = None
    if config.glossary:
        glossary = [t.strip() for t in Path(config.glossary).read_text().splitlines() if t.strip()]
    render_card(
        out_dir,
        load_unit_results(out_dir),
        summary,
        name=config.name,
        aligner=config.aligner.backend,
        target_options=asdict(config.targets),
        glossary=glossary,
    )
    return summary


def run(
    config: PrepConfig,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = True,
) -> dict | None:
    """Prepare the dataset (this rank's share); returns the summary when it wrote the index."""
    rank, world_size = rank_and_world(rank, world_size)
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / RUN_CONFIG, json.dumps(asdict(config), indent=1, default=str))
    items = read_items(config)
    n_mine = sum(
        len(items[i : i + config.shards.items_per_unit])
        for i in range(0, len(items), config.shards.items_per_unit)
        if (i // config.shards.items_per_unit) % world_size == rank
    )
    for _ in with_progress(run_units(config, items, rank, world_size), n_mine, progress):
        pass
    if world_size > 1:
        print(
            f"rank {rank}/{world_size} done; run `vrt-prep merge --output {out}` "
            "when every rank has finished",
            file=sys.stderr,
        )
        return None
    return finish(out, config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vrt-prep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="prepare shards")
    p_run.add_argument("--config", type=Path, help="YAML recipe (recipes/data/*.yaml)")
    p_run.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    p_run.add_argument("--rank", type=int)
    p_run.add_argument("--world-size", type=int)
    p_run.add_argument("--no-progress", action="store_true")
    p_merge = sub.add_parser("merge", help="index, summary and card after a multi-rank run")
    p_merge.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "merge":
        raw = json.loads((args.output / RUN_CONFIG).read_text())
        config = load_config(None, [f"{k}={json.dumps(v)}" for k, v in _flatten(raw).items()])
        summary = finish(args.output, config)
    else:
        config = load_config(args.config, args.overrides)
        summary = run(config, args.rank, args.world_size, not args.no_progress)
        if summary is None:
            return 0
    print(format_summary(summary))
    print(f"shards, index.json, summary.json and the card (README.md) are in {config.output_dir}")
    return 0


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


if __name__ == "__main__":
    raise SystemExit(main())
