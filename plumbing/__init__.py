"""Shared plumbing every package of the kit may import: atomic writes, the progress protocol, JSON.

A leaf: it imports no other package of the kit.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("brats-kit")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"
