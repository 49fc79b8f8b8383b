"""Networks: layers, the embedded networks and the paper's layer catalogues."""

from .model import KINDS, Layer, Network

__all__ = ["KINDS", "Layer", "Network"]
