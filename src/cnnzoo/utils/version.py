"""cnnzoo's version, in one place: the package root re-exports it as ``cnnzoo.__version__``,
and the floors that record it (an export's metadata) read it here, below the root."""

__all__ = ["__version__"]

__version__ = "0.1.0"  # as pyproject.toml's [project] version
