"""The shards of a slice of the demo corpus are the ones pinned in ``tests/fixtures``.

The digest was made by the code before the shard contract moved into ``vrt_finetune`` (commit
73d9412); every later change that must not alter the shards is checked against it. Members are
compared byte for byte, the JSON after dropping the ``format`` key the contract added
(``tests/fixtures/demo_shard_digest.py``).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from data_prep.espeak_worker import espeak_available

FIXTURES = Path(__file__).parent / "fixtures"


def _digest_module():
    spec = importlib.util.spec_from_file_location(
        "demo_shard_digest", FIXTURES / "demo_shard_digest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")
def test_demo_slice_shards_are_unchanged(tmp_path: Path) -> None:
    module = _digest_module()
    pinned = json.loads((FIXTURES / "demo_shard_digest.json").read_text())
    if module.espeak_version() != pinned["espeak_ng"]:
        pytest.skip(f"digest made with {pinned['espeak_ng']}, not {module.espeak_version()}")
    got = module.digest(module.prepare(tmp_path))
    assert got["index"] == pinned["index"]
    assert list(got["shards"]) == list(pinned["shards"])
    for name, members in pinned["shards"].items():
        assert got["shards"][name] == members, name
