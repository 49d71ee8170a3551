"""Console scripts ``vrt-train``, ``vrt-eval`` and ``vrt-export``.

Each command's full interface lands with its issue (training, evaluation/export); until then the
command says so and exits with status 2 rather than pretending to work.
"""

from __future__ import annotations

import sys


def _not_yet(name: str, what: str) -> int:
    print(
        f"{name}: not yet available ({what} has not landed yet; see the README's status table)",
        file=sys.stderr,
    )
    return 2


def train_main() -> int:
    """``vrt-train fit|validate --config recipes/train/....yaml`` (LightningCLI)."""
    from vrt_finetune.train import main

    return main()


def eval_main() -> int:
    """``vrt-eval``: streaming decoding, WER/CER by delay, glossary recall, latency, cards."""
    from vrt_finetune.evaluate import main

    return main()


def export_main() -> int:
    """``vrt-export``: merged Hugging Face and Mistral-format weights, adapter-only export."""
    from vrt_finetune.export import main

    return main()
