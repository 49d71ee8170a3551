"""vrt-finetune data preparation: audio + transcripts → aligned [P]/[W] WebDataset shards."""
