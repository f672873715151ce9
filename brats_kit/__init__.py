"""brats-kit, the application: the command line, the demo and the submission server."""
from plumbing import __version__  # noqa: F401
