"""One photo to its files, and many: the pipeline with models kept loaded, the per-photo job, batches and Ray clusters."""
