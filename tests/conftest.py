"""Shared test set-up."""

import os

import torch

# Under pytest-xdist each worker gets one core: two intra-op threads per worker on a
# 2-core machine make the convolution kernels fight over the cores (many times slower).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

# Measured choices (deploy runtimes, the trainer's precision and memory format) are
# remembered in $CNNZOO_CACHE: the tests' own folder, never the user's ~/.cache.
if not os.environ.get("CNNZOO_CACHE_KEEP"):
    import tempfile

    os.environ["CNNZOO_CACHE"] = tempfile.mkdtemp(prefix="cnnzoo-test-cache-")
