"""The ``cnnzoo`` command: a thin layer over the library (nothing imports it)."""
