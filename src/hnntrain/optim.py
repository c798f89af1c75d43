"""Public PyTorch API: the device-aware optimizer (implemented in :mod:`hnntrain.engine.optim`)."""

from hnntrain.engine.optim import *  # noqa: F401,F403
from hnntrain.engine.optim import __all__  # noqa: F401
