"""Reading model files and saving lowentropy objects.

- :func:`load_network`: an embedded network by name, or the weight layers of a NumPy,
  safetensors, ONNX, PyTorch or Keras file (told apart by content).
- :func:`save` / :func:`load`: a format or a network in one ``.npz`` archive, without
  pickle, fully re-validated when read.

ONNX, PyTorch and Keras files need the optional packages ``onnx``, ``torch`` and
``h5py``; NumPy and safetensors files need nothing beyond NumPy.
"""

from __future__ import annotations

from .detect import FILE_FORMATS, detect_format
from .network import load_network
from .safetensors_files import read_safetensors
from .store import load, save

__all__ = ["load_network", "save", "load", "detect_format", "FILE_FORMATS", "read_safetensors"]
