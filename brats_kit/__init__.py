"""brats-kit: the command line and the shared plumbing of the kit's packages."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("brats-kit")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"
