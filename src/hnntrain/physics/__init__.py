"""Devices, differential pairs, sensing and write counters: what the hardware does."""
