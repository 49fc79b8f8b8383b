"""Networks: layers, the embedded networks and the paper's layer catalogues."""

from .catalogue import CATALOGUE, LayerSpec, catalogue_network, catalogue_specs
from .embedded import EMBEDDED, accuracy, digits, forward, load_embedded, predict
from .model import KINDS, Layer, Network
from .registry import embedded_network, list_networks

__all__ = ["KINDS", "Layer", "Network", "CATALOGUE", "LayerSpec", "catalogue_network",
           "catalogue_specs", "EMBEDDED", "accuracy", "digits", "forward", "load_embedded",
           "predict", "embedded_network", "list_networks"]
