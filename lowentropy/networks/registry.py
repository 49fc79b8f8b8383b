"""The networks loadable by name, without a file: the trained digits networks and the
paper's catalogue (AlexNet, VGG-16, ResNet-152, DenseNet-121)."""

from __future__ import annotations

from .catalogue import CATALOGUE, catalogue_network
from .embedded import EMBEDDED, load_embedded
from .model import Network

__all__ = ["list_networks", "embedded_network"]

_CATALOGUE_OPTIONS = ("layers", "seed", "pretrained", "checkpoint")


def list_networks() -> list[str]:
    """Names :func:`embedded_network` (and ``load_network``) accept: the digits networks
    trained by the project first, then the paper's catalogue.

    Examples
    --------
    >>> list_networks()
    ['lenet-300-100', 'lenet-5', 'alexnet', 'vgg16', 'resnet152', 'densenet121']
    """
    return [*EMBEDDED, *CATALOGUE]


def embedded_network(name: str, **options) -> Network:
    """A network by name.

    Parameters
    ----------
    name : str
        One of :func:`list_networks`.
    **options
        Catalogue networks take ``layers``, ``seed``, ``pretrained`` and ``checkpoint``
        (see :func:`lowentropy.networks.catalogue.catalogue_network`); the digits
        networks take none.

    Raises
    ------
    ValueError
        If the name is unknown (the message lists the valid names).
    TypeError
        If an option does not apply to that network.

    Examples
    --------
    >>> embedded_network("lenet-300-100")
    Network('lenet-300-100', 3 layers, 50,200 weights)
    >>> embedded_network("alexnet", layers="features.0").layers
    [Layer('features.0.weight', conv, shape=(64, 3, 11, 11), uses=3025, synthetic)]
    """
    if not isinstance(name, str):
        raise TypeError(f"network name must be a str, got {type(name).__name__}")
    if name in EMBEDDED:
        if options:
            raise TypeError(f"{name} takes no options, got {sorted(options)}")
        return load_embedded(name)
    if name in CATALOGUE:
        unknown = sorted(set(options) - set(_CATALOGUE_OPTIONS))
        if unknown:
            raise TypeError(f"unknown options {unknown} for {name}; catalogue networks take "
                            f"{', '.join(_CATALOGUE_OPTIONS)}")
        return catalogue_network(name, **options)
    raise ValueError(f"unknown network {name!r}; valid names: {', '.join(list_networks())}")
