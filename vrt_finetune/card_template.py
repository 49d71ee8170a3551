"""Where the card templates (``cards/*.md``) are read from: the checkout, else the installed wheel.

The templates live at the top of the repository, where teams edit them. A wheel carries them as
the package ``vrt_finetune.cards`` (``package-dir`` in ``pyproject.toml``), because a
non-editable install has no repository beside the code: reading only ``<repo>/cards`` made
``vrt-prep`` and ``vrt-eval`` fail at their last step there.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from string import Template

REPO_CARDS = Path(__file__).resolve().parent.parent / "cards"


def card_template(name: str) -> Template:
    """The template ``cards/<name>``: the checkout's copy when there is one, else the wheel's.

    Args:
        name: File name, e.g. ``"dataset_card.md"``.

    Raises:
        FileNotFoundError: neither a checkout nor the installed package has it.
    """
    local = REPO_CARDS / name
    if local.is_file():
        return Template(local.read_text(encoding="utf-8"))
    packaged = files("vrt_finetune.cards") / name
    if not packaged.is_file():
        raise FileNotFoundError(
            f"card template {name!r} is neither in {REPO_CARDS} nor in the installed package"
            " vrt_finetune.cards: reinstall vrt-finetune (pip install .) from a full checkout"
        )
    return Template(packaged.read_text(encoding="utf-8"))
