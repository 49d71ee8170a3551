"""Card templates: package data, installed as ``vrt_finetune.cards`` (see pyproject.toml)."""
