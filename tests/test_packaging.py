"""The wheel carries every package and the card templates, and an installed copy renders cards.

A non-editable install has no repository beside the code, so ``vrt-prep``/``vrt-eval`` must
find ``cards/*.md`` inside the package (``vrt_finetune.cards``, see ``pyproject.toml``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from vrt_finetune.card_template import REPO_CARDS, card_template

REPO = Path(__file__).resolve().parent.parent
PACKAGE_ROOTS = ("data_prep", "vrt_finetune")
MAPPED = {"vrt_finetune.cards": "cards", "vrt_recipes": "recipes"}
"""Packages whose directory has another name (``package-dir`` in ``pyproject.toml``)."""


def _listed_packages() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["setuptools"]["packages"]


def test_every_package_directory_is_listed_in_pyproject() -> None:
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for root in PACKAGE_ROOTS
        for init in (REPO / root).rglob("__init__.py")
    }
    listed = set(_listed_packages())
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(MAPPED)


def test_checkout_templates_are_read_from_cards_dir() -> None:
    for name in ("dataset_card.md", "model_card.md"):
        assert card_template(name).template == (REPO_CARDS / name).read_text(encoding="utf-8")


def test_wheel_carries_templates_and_installed_copy_reads_them(tmp_path: Path) -> None:
    src = tmp_path / "src"  # build outside the checkout: setuptools writes build/ in the tree
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in (*MAPPED.values(), *PACKAGE_ROOTS):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip_wheel, "--wheel-dir", str(dist), str(src)], check=True)
    (wheel,) = dist.glob("vrt_finetune-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(site)
    for package in _listed_packages():
        assert f"{package.replace('.', '/')}/__init__.py" in names, package
    for name in ("dataset_card.md", "model_card.md"):
        assert f"vrt_finetune/cards/{name}" in names
    # the recipes and the demo travel too: `vrt-demo` works from an installed wheel
    recipes = {p.relative_to(REPO).as_posix() for p in (REPO / "recipes").rglob("*.yaml")}
    assert recipes and {"vrt_recipes/" + r.removeprefix("recipes/") for r in recipes} <= names
    assert "vrt_recipes/demo.py" in names and "vrt_recipes/data/medical_glossary.txt" in names
    # the inspection page's scripts and style, inlined into every page it writes
    from data_prep.inspect_page import SCRIPTS, STYLE

    assets = {f"data_prep/assets/{n}" for n in (*SCRIPTS, STYLE, "LICENSE.wavesurfer")}
    assert assets <= names, assets - names
    # The installed copy alone (-S: no site-packages, so no editable checkout on the path).
    probe = (
        "import vrt_finetune.card_template as c, sys;"
        "print(c.__file__); sys.stdout.write(c.card_template('dataset_card.md').template)"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module_file, text = out.split("\n", 1)
    assert Path(module_file).is_relative_to(site)
    assert text == (REPO_CARDS / "dataset_card.md").read_text(encoding="utf-8")
