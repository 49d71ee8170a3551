"""``vrt-prep``: audio + transcripts → aligned ``[P]``/``[W]`` WebDataset shards.

    vrt-prep run --config recipes/data/X.yaml [--source.path=... ...] [--rank R --world_size W]
    vrt-prep run --help                  # every recipe key, with its meaning and default
    vrt-prep merge --output DIR          # after a multi-machine run: index, summary and card
    vrt-prep verify DIR                  # every shard against index.json (size, sha256, samples)
    vrt-prep inspect DIR                 # DIR/inspect.html: listen, see word spans and targets
    vrt-prep score DIR --reference REF   # word boundaries against reference times
    vrt-prep export DIR --to lhotse --out OUT   # a lhotse CutSet (cuts_{split}.jsonl.gz)

A rerun with the same recipe skips finished work units; a run killed at any point and started
again ends with the same shards as an uninterrupted one.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import yaml
from jsonargparse import ArgumentParser

from data_prep.card import render_card
from data_prep.config import PrepConfig, RunOptions, load_config, prep_argv, prep_parser
from data_prep.dataset_commands import add_dataset_commands, run_dataset_command
from data_prep.errors import SourceError
from data_prep.hf_source import HfUnits, hf_items
from data_prep.pipeline import rank_and_world, run_unit_stream, run_units
from data_prep.report import format_summary, load_unit_results, merge, with_progress
from data_prep.sources import (
    SourceItem,
    read_folder,
    read_manifest,
    synthetic_items,
)
from vrt_finetune.config_parser import HelpFormatter, from_namespace
from vrt_finetune.io_utils import DiskFullError, atomic_write_text
from vrt_finetune.shard_format import RUN_CONFIG, ShardFormatError

OLD_RUN_CONFIG = "prep_config.json"
"""What runs before the YAML one wrote (JSON is YAML: read the same way)."""


def read_items(config: PrepConfig) -> list[SourceItem]:
    s = config.source
    if s.kind == "manifest":
        return list(read_manifest(s.path, s.language))
    if s.kind == "folder":
        return list(read_folder(s.path, s.language))
    if s.kind == "lhotse":
        from data_prep.lhotse_source import read_lhotse

        return list(read_lhotse(s.path, s.language))
    if s.kind == "hf":
        return list(hf_items(s))
    return list(
        synthetic_items(s.n_general, s.n_medical, s.seed, s.voices, s.language, s.vocabulary)
    )


def finish(out_dir: Path, config: PrepConfig) -> dict:
    """Index, summary and dataset card from every unit marker."""
    _, summary = merge(out_dir, {"name": config.name, "tokenizer": str(config.tokenizer)})
    glossary = None
    if config.glossary:
        glossary = [t.strip() for t in Path(config.glossary).read_text().splitlines() if t.strip()]
    score = None
    if config.reference:
        from data_prep.score import score_alignments, write_report

        report = score_alignments(out_dir, config.reference)
        write_report(report, out_dir / "score")
        score = report.to_json()
    render_card(
        out_dir,
        load_unit_results(out_dir),
        summary,
        name=config.name,
        aligner=config.aligner.backend,
        target_options=asdict(config.targets),
        glossary=glossary,
        alignment_score=score,
        split_by=config.shards.split_by,
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
    save_config(config, out / RUN_CONFIG)
    n_mine: int | None
    if config.source.kind == "hf":  # a stream: units run while it is read
        units = HfUnits(config.source, config.shards.items_per_unit, rank, world_size)
        results, n_mine = run_unit_stream(config, units), units.n_rows_of_rank
    else:
        items = read_items(config)
        n_mine = sum(
            len(items[i : i + config.shards.items_per_unit])
            for i in range(0, len(items), config.shards.items_per_unit)
            if (i // config.shards.items_per_unit) % world_size == rank
        )
        results = run_units(config, items, rank, world_size)
    for _ in with_progress(results, n_mine, progress):
        pass
    if world_size > 1:
        print(
            f"rank {rank}/{world_size} done; run `vrt-prep merge --output {out}` "
            "when every rank has finished",
            file=sys.stderr,
        )
        return None
    return finish(out, config)


def save_config(config: PrepConfig, path: Path) -> None:
    """Write ``config`` as a recipe that ``--config`` (and :func:`load_config`) reads back."""
    header = "# the resolved recipe of this vrt-prep run; `vrt-prep merge` reads it back\n"
    body = yaml.safe_dump(asdict(config), sort_keys=False, allow_unicode=True)
    atomic_write_text(path, header + body)


def saved_config(out_dir: Path) -> Path:
    """The recipe a run saved in ``out_dir`` (the YAML one, else an older run's JSON one)."""
    for name in (RUN_CONFIG, OLD_RUN_CONFIG):
        if (out_dir / name).is_file():
            return out_dir / name
    raise FileNotFoundError(f"{out_dir}: no {RUN_CONFIG}; is it the output of `vrt-prep run`?")


def build_parser(run_parser: ArgumentParser) -> ArgumentParser:
    """The ``vrt-prep`` command line: the ``run`` and ``merge`` subcommands."""
    parser = ArgumentParser(prog="vrt-prep", description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subcommands()
    sub.add_subcommand("run", run_parser, help="prepare shards (this machine's share)")
    merge = ArgumentParser(
        prog="vrt-prep merge",
        description="Index, summary and card of a run whose ranks have all finished.",
    )
    merge.add_argument("--output", type=str, required=True, help="the run's output directory")
    sub.add_subcommand("merge", merge, help="index, summary and card after a multi-rank run")
    add_dataset_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vrt-prep``; returns the exit status (0 ok, 2 bad command line or recipe)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "run":
        args = ["run", *prep_argv(args[1:])]
    run_parser = prep_parser()
    cfg = build_parser(run_parser).parse_args(args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(cfg, run_parser)
    except (DiskFullError, ShardFormatError, SourceError, KeyError, FileNotFoundError) as err:
        print(f"vrt-prep {cfg.subcommand}: error: {err}", file=sys.stderr)
        return 1


def _dispatch(cfg, run_parser: ArgumentParser) -> int:
    if cfg.subcommand in ("verify", "inspect", "score", "export"):
        return run_dataset_command(cfg.subcommand, cfg[cfg.subcommand])
    if cfg.subcommand == "merge":
        out = Path(cfg.merge.output)
        try:
            config = load_config(saved_config(out), [f"--output={out}"])
        except (ValueError, OSError) as err:
            print(f"vrt-prep merge: error: {err}", file=sys.stderr)
            return 2
        summary = finish(out, config)
    else:
        try:
            init = run_parser.instantiate(cfg.run)
            config, options = from_namespace(PrepConfig, init), from_namespace(RunOptions, init)
        except (ValueError, TypeError) as err:
            run_parser.error(str(err))
        summary = run(config, options.rank, options.world_size, options.progress)
        if summary is None:
            return 0
    print(format_summary(summary))
    print(f"shards, index.json, summary.json and the card (README.md) are in {config.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
