"""Training, evaluation, prediction and export: losses, metrics, tiled inference,
checkpoints and the distributed training loop.

Imports flow one way: ``engine`` builds on ``registry`` (models) and ``data``; the CLI is a
thin layer over it.
"""
