"""The network on its arrays, the training step and loop, and the PyTorch API layers."""
