"""vidswap: video face swapping for VFX pipelines."""

__version__ = "0.1.0"
