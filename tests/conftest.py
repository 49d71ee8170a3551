"""Shared fixtures: one offline test tokenizer and tiny model per session; the demo's English
base for the slow proofs; CUDA gating."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    """Holds ``shards/`` (the general sentences), ``base-model/`` and the job's ``job.log``."""
    model: Path
    prep_s: float
    train_s: float
    english: dict
    """``vrt-eval`` of the base on its held-out sentences at the demo's delays
    (``{"240": {...}, "960": {...}}``)."""


def _uses_demo_base(item: pytest.Item) -> bool:
    return item.get_closest_marker("demo_base") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
    # The tests on the demo base run last: by then its background training (below) is done or
    # nearly, and the suite ran beside it.
    items.sort(key=_uses_demo_base)


@pytest.fixture(scope="session")
def demo_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's offline test tokenizer (``make demo``'s stage 1)."""
    from vrt_recipes import demo

    return demo.make_tokenizer(tmp_path_factory.mktemp("demo_tokenizer")).path


@pytest.fixture(scope="session", autouse=True)
def _demo_base_job(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Starts ``tests/demo_base_job.py`` before the first test when a selected test needs the
    demo base, and stops it at the end of the session if it is still running.

    The base trains on one intra-op thread and the session runs on one (here and in the
    commands its tests start) until it is done: a tiny model's step is about 1.4x slower on one
    thread than on two but leaves the other core to the suite, whereas two threads each on two
    cores stall at every OpenMP barrier. The session also drops to the lowest priority (``nice``
    19, for good: it cannot be raised again), so that its tests' own processes (DDP ranks, data
    workers) take the cycles the job leaves rather than the job's. When the session has nothing
    left but to wait, the job takes both cores (``demo_base`` below).
    """
    if not any(_uses_demo_base(item) for item in request.session.items):
        yield None
        return
    tokenizer = request.getfixturevalue("demo_tokenizer")
    root = tmp_path_factory.mktemp("demo_base")
    log = (root / "job.log").open("w")
    job = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("demo_base_job.py")), str(root),
         str(tokenizer), str(root / "waiting")],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    os.nice(19)
    before = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield job, root, before
    if job.poll() is None:
        job.kill()
    job.wait()
    log.close()


@pytest.fixture(scope="session")
def demo_base(_demo_base_job) -> DemoBase:
    """``make demo``'s stages 1-3 exactly (test tokenizer, general shards, base from random init)
    and the base's English WER: the learning proof checks it, the language proof adapts it.
    About 12 minutes on the 2-core VM, in the background from the session's start; once it is
    done the session has both cores back."""
    if _demo_base_job is None:
        raise RuntimeError(
            "a test uses the demo base without the marker: add pytest.mark.demo_base to it "
            "(the base is started before the first test only for marked tests)"
        )
    job, root, (threads, omp) = _demo_base_job
    t0 = time.perf_counter()
    (root / "waiting").touch()  # nothing left to run beside it: the job takes both cores
    code = job.wait()
    torch.set_num_threads(threads)
    if omp is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = omp
    result = root / "result.json"
    if code != 0 or not result.exists():
        tail = (root / "job.log").read_text(errors="replace")[-4000:]
        raise RuntimeError(f"the demo base job failed (exit {code}); its log ends:\n{tail}")
    r = json.loads(result.read_text())
    print(f"demo base: waited {time.perf_counter() - t0:.0f} s for the background job")
    return DemoBase(root, Path(r["model"]), r["prep_s"], r["train_s"], r["english"])
