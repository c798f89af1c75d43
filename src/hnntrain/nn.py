"""Public PyTorch API: device-pair layers (implemented in :mod:`hnntrain.engine.nn`)."""

from hnntrain.engine.nn import *  # noqa: F401,F403
from hnntrain.engine.nn import __all__  # noqa: F401
