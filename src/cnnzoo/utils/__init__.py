"""Small helpers that several floors of cnnzoo need, one neutral module each.

Nothing here imports another part of cnnzoo, so every floor (layers, models, analysis,
data, classical, engine, cli) may use them without an import running backwards:

* :mod:`~cnnzoo.utils.atomic`: atomic file writes (a temporary file, then a rename);
* :mod:`~cnnzoo.utils.text`: text tables, human-readable counts, an error's first line;
* :mod:`~cnnzoo.utils.sizes`: ``pair`` and the ``CxHxW`` size parser;
* :mod:`~cnnzoo.utils.jsonsafe`: values as strict JSON (tensors to lists, NaN to null);
* :mod:`~cnnzoo.utils.meta`: data-less copies and builds on PyTorch's meta device.
* :mod:`~cnnzoo.utils.version`: the package's version (``cnnzoo.__version__``).
"""
