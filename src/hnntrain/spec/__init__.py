"""Leaf layer: run configuration dataclasses and device preset data (imports nothing from hnntrain)."""
