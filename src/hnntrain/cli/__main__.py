"""``python -m hnntrain.cli``."""

from hnntrain.cli import main

main()
