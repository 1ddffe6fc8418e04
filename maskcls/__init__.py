"""maskcls: a competition toolkit for mask / gender / age face classification.

`from maskcls import Predictor` is the Python API (maskcls/predictor.py); it is imported on first use,
so `import maskcls` and `maskcls --help` stay instant.
"""

import os

__version__ = "0.1.0"

# albumentations asks the network for its newest version when imported (a warning on every offline
# training); its documented switch turns that off for this process, before anything imports it.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
__all__ = ["Predictor", "__version__"]


def __getattr__(name: str):
    if name == "Predictor":
        from maskcls.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'maskcls' has no attribute {name!r}")
