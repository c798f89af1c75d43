"""hnntrain: on-chip training with pairs of non-ideal memory devices.

The package sets ``OMP_WAIT_POLICY=PASSIVE`` before torch is first imported (unless the user
set it): batch-1 training issues many tiny tensor ops, and OpenMP's default spin-waiting makes
them up to 30x slower on small machines whenever another process competes for a core.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
