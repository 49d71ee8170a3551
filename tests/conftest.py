"""Shared fixtures: one offline test tokenizer and tiny model per session; the demo's English
base for the slow proofs; CUDA gating."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from vrt_finetune.testing import make_test_tokenizer

    return make_test_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def tiny_model(tokenizer):
    from vrt_finetune.testing import make_tiny_model

    return make_tiny_model(tokenizer).eval()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module of tiny-model tests, restored afterwards.

    Tiny models' matmuls are smaller than the cost of syncing two threads, and on a shared
    2-core machine every OpenMP barrier waits for a descheduled thread (a tiny forward: 8 ms on
    one thread vs 0.6 s on two under load, measured). Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass(frozen=True)
class DemoBase:
    """The demo's English base as the slow proofs share it (trained once per session)."""

    root: Path
    """Holds ``tokenizer/``, ``shards/`` (the general sentences) and ``base-model/``."""
    tokenizer: Path
    model: Path
    n_samples: int
    prep_s: float
    train_s: float


@pytest.fixture(scope="session")
def demo_base(tmp_path_factory: pytest.TempPathFactory) -> DemoBase:
    """``make demo``'s stages 1-3 exactly (test tokenizer, general shards, base from random init):
    the learning proof checks it, the language proof adapts it. About 10 minutes on 2 cores, paid
    once per session by whichever slow test asks first."""
    from vrt_recipes import demo

    root = tmp_path_factory.mktemp("demo_base")
    t0 = time.perf_counter()
    tok = demo.make_tokenizer(root)
    n = demo.DEFAULT_N_GENERAL
    summary = demo.prepare_general(root / "shards", "proof", tok.path, n, None)
    assert summary["kept_samples"] == n, summary
    prep_s = time.perf_counter() - t0
    model = demo.train_base(root, tok.path, demo.DEFAULT_BASE_STEPS)
    return DemoBase(root, tok.path, model, n, prep_s, time.perf_counter() - t0 - prep_s)


@pytest.fixture(scope="session")
def demo_base_english(demo_base: DemoBase) -> dict:
    """The base's ``vrt-eval`` results on its held-out English sentences at the demo's delays
    (``{"240": {...}, "960": {...}}``): the learning proof's figures and the language proof's
    forgetting reference, decoded once."""
    from vrt_recipes import demo

    models = {"base": str(demo_base.model)}
    out = demo_base.root / "eval_english"
    return demo.evaluate(models, demo_base.root / "shards", list(demo.DELAYS_MS), out)["base"][
        "domain"
    ]
