"""vrt-finetune: fine-tuning, evaluation and export for Voxtral Realtime."""

__version__ = "0.1.0"
