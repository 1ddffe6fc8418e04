"""maskcls: a competition toolkit for mask / gender / age face classification.

`from maskcls import Predictor` is the Python API (maskcls/predictor.py); it is imported on first use,
so `import maskcls` and `maskcls --help` stay instant.
"""

__version__ = "0.1.0"
__all__ = ["Predictor", "__version__"]


def __getattr__(name: str):
    if name == "Predictor":
        from maskcls.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'maskcls' has no attribute {name!r}")
