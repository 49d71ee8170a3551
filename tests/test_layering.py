"""The package layering: ``data_prep`` builds on ``vrt_finetune``'s model contract, never the
other way round (``docs/model_contract.md``). The exceptions read users' audio files (any
container, rate and channel count) with vrt-prep's reader, ``data_prep.audio_io``, rather than
a second one: ``vrt-eval`` the files a JSONL manifest names, ``vrt-transcribe`` the recordings it
transcribes."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALLOWED = {
    ("vrt_finetune/evaluate.py", "data_prep.audio_io"),
    ("vrt_finetune/transcribe.py", "data_prep.audio_io"),
}


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
