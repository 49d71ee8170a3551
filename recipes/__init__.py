"""``vrt_recipes``: the shipped recipes (``data/*.yaml``, ``train/*.yaml``) and the demo script.

Installed as a package of its own (``pyproject.toml`` maps it to this ``recipes/`` directory) so
that the recipes and ``make demo`` travel in the wheel: ``vrt-demo`` (or
``python -m vrt_recipes.demo``) runs from any installed copy. It sits above both pipelines and is
the one place that drives ``data_prep`` and ``vrt_finetune`` together.
"""

from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parent
"""Where the YAML recipes are: this package's directory, in a checkout or an installed wheel."""
DATA_RECIPES = RECIPES_DIR / "data"
TRAIN_RECIPES = RECIPES_DIR / "train"
