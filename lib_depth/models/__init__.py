"""Model files: reading checkpoints safely, their configs, the doctor, the download table, downloads,
hashes and the diffusers conversion."""
