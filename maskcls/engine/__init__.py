"""One training engine for every task: fit() and the pieces it is made of.

Importing the package imports the modules that fill the registries the settings name (loss,
optimizer, scheduler, age head, CutMix mode and partner), so anything that reaches the engine can
check a config (see maskcls/registry.py).
"""

from maskcls.engine import kinds, losses, mixers, optim  # noqa: F401  (they fill their registries)
