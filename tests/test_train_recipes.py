"""Every recipe under recipes/train/ parses with its own launch command (no weights, no data),
and the CLI reports bad input clearly."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from vrt_finetune.data import VrtDataModule
from vrt_finetune.lit_module import VrtLitModule
from vrt_finetune.train import TRAINER_DEFAULTS, VoxtralFSDP, VrtCLI, main

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes" / "train").glob("*.yaml"))


class ParseOnly(VrtCLI):
    """Parses and builds model, data and callbacks, but no Trainer (FSDP needs GPUs)."""

    def instantiate_classes(self) -> None:
        self.config_init = self.parser.instantiate_classes(self.config)


def launch_args(recipe: Path) -> list[str]:
    """The arguments of the recipe's first-line launch command, after the subcommand."""
    first = recipe.read_text().splitlines()[0]
    assert first.startswith("# vrt-train fit "), f"{recipe.name}: no launch command on line 1"
    args = shlex.split(first.removeprefix("# vrt-train fit "))
    assert f"recipes/train/{recipe.name}" in args
    return args


def test_there_are_recipes() -> None:
    names = {p.name for p in RECIPES}
    assert {"tiny_cpu.yaml", "medical.yaml", "new_language.yaml"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_parses(recipe: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    cli = ParseOnly(
        VrtLitModule,
        VrtDataModule,
        args=launch_args(recipe),
        run=False,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
    init = cli.config_init
    model, data = init["model"], init["data"]
    assert isinstance(model, VrtLitModule) and model.model is None  # nothing loaded yet
    assert isinstance(data, VrtDataModule)
    # the data module's tokenizer follows the model's
    assert data.tokenizer_source == (model.tokenizer_source or model.base_model)
    assert init["checkpoint"].dirpath
    assert cli.config["trainer"]["max_steps"] > 0
    # GPU recipes compile each layer; CPU ones do not (minutes of compiling, nothing gained)
    assert model.compile_layers == (cli.config["trainer"]["accelerator"] == "gpu")
    if "fsdp" in recipe.name:
        assert isinstance(init["trainer"]["strategy"], VoxtralFSDP)
    if recipe.name in ("medical.yaml", "new_language.yaml"):  # their augment: blocks parse
        assert data.augment.enabled and 0 < data.augment.speed.p < 1


def test_cli_errors_are_clear(tmp_path: Path, tokenizer, capsys, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    base = ["fit", "--config", "recipes/train/tiny_cpu.yaml", "--trainer.logger=false"]
    base += [f"--trainer.default_root_dir={tmp_path}", f"--checkpoint.dirpath={tmp_path}"]
    from vrt_finetune.testing import save_tiny_checkpoint

    model = save_tiny_checkpoint(tmp_path / "m", tokenizer)
    rc = main([*base, f"--model.base_model={model}", "--data.train_shards=/nowhere/*.tar"])
    assert rc == 1 and "matches no file" in capsys.readouterr().err

    from vrt_finetune.testing import make_test_tokenizer

    other = make_test_tokenizer(tmp_path / "tok2048", vocab_size=2048)
    rc = main(
        [
            *base,
            f"--model.base_model={model}",
            f"--model.tokenizer={other.path}",
            f"--data.train_shards={model / 'config.json'}",  # exists; never read
            "--data.val_shards=null",
        ]
    )
    assert rc == 1 and "2048 ids, the model's embedding 4096 rows" in capsys.readouterr().err

    assert main([*base, "--data.delays.choices_ms=[480, 500]"]) == 1
    assert "multiple of 80 ms" in capsys.readouterr().err


def test_cli_fit_then_validate_from_checkpoint(tmp_path: Path, tokenizer, monkeypatch) -> None:
    import torch
    from test_train_data import write_shards

    from vrt_finetune.testing import save_tiny_checkpoint

    monkeypatch.chdir(REPO)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two shared cores: more threads only add contention
    model = save_tiny_checkpoint(tmp_path / "m", tokenizer)
    write_shards(tmp_path / "s", tokenizer, n_shards=2, per_shard=4)
    write_shards(tmp_path / "s", tokenizer, n_shards=1, per_shard=2, split="valid", seed=1)
    common = [
        "--config",
        "recipes/train/tiny_cpu.yaml",
        f"--model.base_model={model}",
        "--model.wer_samples=0",
        f"--data.train_shards={tmp_path / 's' / 'train'}",
        f"--data.val_shards={tmp_path / 's' / 'valid'}",
        "--data.num_workers=0",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        f"--checkpoint.dirpath={tmp_path / 'ckpt'}",
    ]
    fit = ["fit", *common, "--trainer.max_steps=2", "--checkpoint.every_n_train_steps=2"]
    assert main(fit) == 0
    ckpt = tmp_path / "ckpt" / "step=000002.ckpt"
    assert ckpt.is_file() and (tmp_path / "ckpt" / "last-adapter").is_dir()
    try:
        assert main(["validate", *common, f"--ckpt_path={ckpt}"]) == 0
    finally:
        torch.set_num_threads(threads)
