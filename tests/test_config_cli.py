"""One config/CLI mechanism: ``vrt-prep``, ``vrt-eval`` and ``vrt-export`` on jsonargparse.

Per-key help from the dataclasses' attribute docstrings, ``--print_config`` that round-trips,
``--config`` files, dotted overrides, the earlier syntax still accepted, clear errors.
Everything runs in-process through the commands' ``main`` (no model is loaded).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from data_prep.cli import RUN_CONFIG, save_config
from data_prep.cli import main as prep_main
from data_prep.config import PrepConfig, load_config, prep_argv
from vrt_finetune.config_parser import legacy_argv, parse
from vrt_finetune.eval_config import EvalConfig, eval_parser
from vrt_finetune.evaluate import main as eval_main
from vrt_finetune.export import ExportConfig, export_parser
from vrt_finetune.export import main as export_main
from vrt_finetune.testing import make_test_tokenizer

REPO = Path(__file__).resolve().parent.parent
MEDICAL = REPO / "recipes" / "data" / "medical_manifest.yaml"
SYNTHETIC = REPO / "recipes" / "data" / "synthetic_demo.yaml"


def _exit_output(entry, argv: list[str], capsys) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of a command that ends by exiting (help, print_config)."""
    with pytest.raises(SystemExit) as exc:
        entry(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


# --------------------------------------------------------------------------- help


def test_prep_help_lists_subcommands(capsys) -> None:
    code, out, _ = _exit_output(prep_main, ["--help"], capsys)
    assert code == 0
    assert "run" in out and "merge" in out and "--world_size" in out


def test_prep_run_help_shows_each_keys_docstring(capsys) -> None:
    code, out, _ = _exit_output(prep_main, ["run", "--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())  # help text is wrapped
    assert "--aligner.max_seconds" in flat
    assert "Longest recording aligned in one piece" in flat  # AlignerConfig.max_seconds
    assert "--filters.max_duration" in flat and "never inside a word" in flat
    assert "--source.path" in flat and "Manifest file (JSONL/CSV)" in flat
    assert "positional key.sub=value" in flat  # the earlier override form, documented


@pytest.mark.parametrize(
    ("entry", "key", "text"),
    [
        (eval_main, "--delays", "Transcription delays in ms"),
        (eval_main, "--check_targets", "rank the 8 UNVERIFIED target conventions"),
        (export_main, "--adapter", "peft LoRA adapter directory to merge"),
        (export_main, "--formats", "plus ``adapter`` when there is one"),
    ],
)
def test_eval_and_export_help_show_each_keys_docstring(entry, key, text, capsys) -> None:
    code, out, _ = _exit_output(entry, ["--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    assert key in flat and text in flat and "--print_config" in flat


# --------------------------------------------------------------------------- print_config


def test_prep_print_config_is_the_full_recipe_and_round_trips(tmp_path, capsys) -> None:
    code, out, _ = _exit_output(prep_main, ["run", "--print_config"], capsys)
    assert code == 0
    defaults = yaml.safe_load(out)
    assert defaults["aligner"]["max_seconds"] == 60.0 and defaults["targets"]["overrun"] == "wait"

    argv = ["run", "--config", str(MEDICAL), "--workers=3", "--print_config"]
    code, out, _ = _exit_output(prep_main, argv, capsys)
    assert code == 0
    printed = yaml.safe_load(out)
    assert printed["name"] == "medical-dictations" and printed["workers"] == 3
    assert printed["source"]["path"] == "/data/dictations/manifest.jsonl"
    assert printed["filters"]["max_words_per_second"] == 6.0
    (tmp_path / "printed.yaml").write_text(out)
    assert load_config(tmp_path / "printed.yaml") == load_config(MEDICAL, ["workers=3"])


def test_eval_print_config_round_trips(tmp_path, capsys) -> None:
    code, out, _ = _exit_output(eval_main, ["--print_config"], capsys)
    assert code == 0
    assert yaml.safe_load(out)["delays"] == [240, 480, 960]

    argv = ["--model", "base=/m", "--model", "tuned=/m:/a", "--data", "d1", "d2", "--card"]
    argv += ["--base-model", "org/base", "--device", "cpu", "--print_config"]
    code, out, _ = _exit_output(eval_main, argv, capsys)
    printed = yaml.safe_load(out)
    assert printed["model"] == ["base=/m", "tuned=/m:/a"] and printed["data"] == ["d1", "d2"]
    assert printed["card"] is True and printed["base_model"] == "org/base"
    (tmp_path / "eval.yaml").write_text(out)
    from_file = parse(EvalConfig, eval_parser(), ["--config", str(tmp_path / "eval.yaml")])
    direct = parse(EvalConfig, eval_parser(), legacy_argv(argv[:-1], EvalConfig))
    assert from_file == direct


# --------------------------------------------------------------------------- old syntax


def test_prep_old_positional_overrides_still_work() -> None:
    config = load_config(MEDICAL, ["filters.max_duration=12.5", 'source.path="/a b/m.jsonl"'])
    assert config.filters.max_duration == 12.5 and config.source.path == "/a b/m.jsonl"
    assert config == load_config(
        MEDICAL, ["--filters.max_duration=12.5", "--source.path", "/a b/m.jsonl"]
    )
    argv = prep_argv(["glossary=null", "--world-size", "2", "--no-progress"])
    assert argv == ["--glossary=null", "--world_size", "2", "--progress=false"]
    # a value of an option is never taken for an override
    assert prep_argv(["--source.path", "a=b"]) == ["--source.path", "a=b"]


def test_eval_and_export_old_invocations_still_parse() -> None:
    argv = ["--model", "base=/m", "--model", "tuned=/m:/a", "--data", "d1", "d2"]
    argv += ["--delays", "240", "480", "--batch-size", "2", "--check-targets", "--device", "cpu"]
    config = parse(EvalConfig, eval_parser(), legacy_argv(argv, EvalConfig))
    assert config.model == ["base=/m", "tuned=/m:/a"] and config.data == ["d1", "d2"]
    assert config.delays == [240, 480] and config.batch_size == 2 and config.check_targets
    assert [s.adapter for s in config.specs] == [None, "/a"] and config.dtype == "fp32"
    assert legacy_argv(["--model=a", "--model=b"], EvalConfig) == [
        *("--model=[]", "--model+", "a", "--model+", "b")
    ]
    # jsonargparse's own list forms
    new = ["--model=[base=/m]", "--model+", "tuned=/m:/a", "--data", "[d1,d2]", "--delays+", "80"]
    config = parse(EvalConfig, eval_parser(), legacy_argv(new, EvalConfig))
    assert config.model == ["base=/m", "tuned=/m:/a"] and config.data == ["d1", "d2"]
    assert config.delays == [240, 480, 960, 80]

    argv = ["--base", "b", "--out", "o", "--formats", "hf", "mistral", "--overwrite"]
    config = parse(ExportConfig, export_parser(), legacy_argv(argv, ExportConfig))
    assert config.formats == ["hf", "mistral"] and config.overwrite
    config = parse(ExportConfig, export_parser(), ["--base=b", "--out=o", "--adapter=a"])
    assert config.chosen_formats == ["hf", "mistral", "adapter"]


# --------------------------------------------------------------------------- errors


def test_unknown_keys_are_named(tmp_path, capsys) -> None:
    with pytest.raises(ValueError, match=r"filters\.max_durration"):
        load_config(MEDICAL, ["filters.max_durration=3"])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(MEDICAL.read_text() + "aligner_typo: 1\n")
    with pytest.raises(ValueError, match="aligner_typo"):
        load_config(recipe)
    for argv in (
        ["run", "--config", str(MEDICAL), "--filters.max_durration=3"],
        ["run", "--config", str(MEDICAL), "filters.max_durration=3"],
    ):
        code, _, err = _exit_output(prep_main, argv, capsys)
        assert code == 2 and "filters.max_durration" in err
    code, _, err = _exit_output(eval_main, ["--model=[m]", "--data=[d]", "--delay=240"], capsys)
    assert code == 2 and "--delay=240" in err


def test_validation_errors_surface(capsys) -> None:
    with pytest.raises(ValueError, match="min_duration < max_duration"):
        load_config(MEDICAL, ["filters.max_duration=0.1"])
    argv = ["run", "--config", str(MEDICAL), "--filters.max_duration=0.1"]
    code, _, err = _exit_output(prep_main, argv, capsys)
    assert code == 2 and "min_duration < max_duration" in err
    argv = ["run", "--config", str(MEDICAL), "--source.kind=folder", "--source.path="]
    code, _, err = _exit_output(prep_main, argv, capsys)
    assert code == 2 and "source.path is required" in err
    minimal = ["--model", "m", "--data", "d"]
    code, _, err = _exit_output(eval_main, [*minimal, "--delays", "100"], capsys)
    assert code == 2 and "multiple of 80" in err
    code, _, err = _exit_output(eval_main, [*minimal, "--card"], capsys)
    assert code == 2 and "--card needs --base_model" in err


# --------------------------------------------------------------------------- merge


@pytest.fixture()
def demo_config(tmp_path) -> PrepConfig:
    tok = make_test_tokenizer(tmp_path / "tok")
    return load_config(SYNTHETIC, [f"tokenizer={tok.path}", "output=/moved/away", "name=merged"])


def test_merge_reads_the_saved_yaml_recipe(tmp_path, demo_config, capsys) -> None:
    out = tmp_path / "out"
    save_config(demo_config, out / RUN_CONFIG)
    assert load_config(out / RUN_CONFIG) == demo_config
    assert prep_main(["merge", "--output", str(out)]) == 0  # no units yet: an empty dataset
    assert json.loads((out / "index.json").read_text())["name"] == "merged"
    assert f"are in {out}" in capsys.readouterr().out  # the merged dir, not the saved output


def test_merge_reads_an_older_runs_json_recipe(tmp_path, demo_config) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # exactly what vrt-prep run wrote before the YAML recipe
    (out / "prep_config.json").write_text(json.dumps(asdict(demo_config), indent=1, default=str))
    assert prep_main(["merge", "--output", str(out)]) == 0
    assert json.loads((out / "index.json").read_text())["name"] == "merged"


def test_merge_without_a_recipe_says_so(tmp_path, capsys) -> None:
    assert prep_main(["merge", "--output", str(tmp_path)]) == 2
    assert RUN_CONFIG in capsys.readouterr().err
