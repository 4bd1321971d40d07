"""What the training recipes (``training/sar2vi.py``, ``training/crop_classification.py``) share:
typed configs from YAML + CLI flags (:mod:`.config`), seeding, devices, DDP, checkpoints, logs,
progress and throughput (:mod:`.runtime`), splits, class tables and normalisation of the streamed
batches (:mod:`.data`), figures (:mod:`.figures`) and the STAC MLM item of a trained model
(:mod:`.mlm`). See docs/training.md."""
