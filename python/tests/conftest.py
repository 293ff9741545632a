"""Makes the source tree's `mobilellm` importable when the package is not installed, and locates fixtures."""
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
try:
    import mobilellm  # noqa: F401  (installed)
except ImportError:
    sys.path.insert(0, str(REPO / "python"))
