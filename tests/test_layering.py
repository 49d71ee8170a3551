"""The package layering: ``data_prep`` builds on ``vrt_finetune``'s model contract, never the
other way round (``docs/model_contract.md``). The one exception: ``vrt-eval`` decodes the audio
files a JSONL manifest names with ``data_prep.audio_io``."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALLOWED = {("vrt_finetune/evaluate.py", "data_prep.audio_io")}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_vrt_finetune_does_not_import_data_prep() -> None:
    found = {
        (path.relative_to(REPO).as_posix(), name)
        for path in sorted((REPO / "vrt_finetune").rglob("*.py"))
        for name in _imports(path)
        if name == "data_prep" or name.startswith("data_prep.")
    }
    assert found <= ALLOWED, sorted(found - ALLOWED)
