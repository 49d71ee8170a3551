"""Every shipped data recipe parses through ``vrt-prep``'s parser (no audio, no weights) and
starts with its launch command, in the jsonargparse form."""

from pathlib import Path

import pytest

from data_prep.config import PrepConfig, load_config

RECIPES = sorted((Path(__file__).parent.parent / "recipes" / "data").glob("*.yaml"))


def test_there_are_recipes() -> None:
    assert len(RECIPES) >= 3


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_parses(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, PrepConfig)
    first = path.read_text().splitlines()[0]
    assert first.startswith("# vrt-prep run --config recipes/data/" + path.name)
    overrides = first.split(path.name, 1)[1].split()
    assert all(o.startswith("--") for o in overrides), first  # not the positional key=value
    assert isinstance(load_config(path, overrides), PrepConfig)


def test_overrides_and_unknown_keys() -> None:
    config = load_config(RECIPES[0], ["filters.max_duration=12.5", "workers=3"])
    assert config.filters.max_duration == 12.5 and config.workers == 3
    with pytest.raises(ValueError, match=r"filters\.max_durration"):
        load_config(RECIPES[0], ["filters.max_durration=3"])
    with pytest.raises(ValueError, match="min_duration < max_duration"):
        load_config(RECIPES[0], ["filters.max_duration=0.1"])
