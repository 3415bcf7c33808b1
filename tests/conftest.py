"""Shared test set-up."""

import os

import torch

# Under pytest-xdist each worker gets one core: two intra-op threads per worker on a
# 2-core machine make the convolution kernels fight over the cores (many times slower).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
