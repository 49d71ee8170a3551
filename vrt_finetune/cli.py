"""Console scripts ``vrt-train``, ``vrt-eval``, ``vrt-export`` and ``vrt-transcribe``
(``vrt-prep`` is ``data_prep.cli``). Imports are deferred so each command loads only what it
needs."""

from __future__ import annotations


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


def transcribe_main() -> int:
    """``vrt-transcribe``: a model on audio files; live transcript, word times, SRT/VTT."""
    from vrt_finetune.transcribe import main

    return main()
