"""A file-upload button that checks the file's size in the browser before sending it.

``ipywidgets.FileUpload`` reads the whole file in the page and sends it in one websocket
message; a file over the server's message limit
(``Voila.tornado_settings.websocket_max_message_size`` in ``app/voila.json``) makes the
server close the connection, and the page goes dead without a word. This button (an
``anywidget``, like plotly's figures) looks at ``File.size`` first: a file over
``max_bytes`` is not read at all, and only its name and size reach the kernel, where the
dashboard refuses it with a message in the page. A file within the limit arrives as one
binary buffer.

On the Python side it behaves like ``FileUpload``: ``value`` is a tuple of one item
``{"name", "type", "size", "content"}`` (``content`` is ``None`` for a refused file), and
the dashboards observe ``value``.
"""

from __future__ import annotations

import anywidget
import traitlets

__all__ = ["LimitedUpload"]

_ESM = r"""
function render({ model, el }) {
  const input = document.createElement("input");
  input.type = "file";
  input.style.display = "none";
  input.className = "lowentropy-upload-input";
  const button = document.createElement("button");
  button.className = "jupyter-widgets jupyter-button widget-button lowentropy-upload-button";
  button.style.width = "100%";
  const sync = () => {
    button.textContent = "\u2b06 " + model.get("description");
    input.accept = model.get("accept");
  };
  sync();
  model.on("change:description", sync);
  model.on("change:accept", sync);
  button.addEventListener("click", () => { input.value = ""; input.click(); });
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    const meta = { name: file.name, size: file.size, type: file.type };
    if (file.size > model.get("max_bytes")) {  // never read: only its size is sent
      model.send({ ...meta, refused: true });
      return;
    }
    button.disabled = true;
    try {
      const buffer = await file.arrayBuffer();
      model.send({ ...meta, refused: false }, undefined, [buffer]);
    } finally {
      button.disabled = false;
    }
  });
  el.append(button, input);
}
export default { render };
"""


class LimitedUpload(anywidget.AnyWidget):
    """An upload button that sends no file over ``max_bytes`` (it sends its size instead).

    Parameters
    ----------
    max_bytes : int
        The largest file the page sends.
    description : str
        The button's label.
    accept : str
        File types offered by the browser's dialog (as ``FileUpload.accept``).

    Examples
    --------
    >>> up = LimitedUpload(max_bytes=10, description="upload model")
    >>> up.receive({"name": "big.npz", "size": 11, "type": "", "refused": True}, [])
    >>> up.value[0]["content"] is None, up.value[0]["size"]
    (True, 11)
    >>> up.receive({"name": "m.npy", "size": 3, "type": "", "refused": False},
    ...            [memoryview(b"abc")])
    >>> bytes(up.value[0]["content"])
    b'abc'
    """

    _esm = _ESM
    description = traitlets.Unicode("upload").tag(sync=True)
    accept = traitlets.Unicode("").tag(sync=True)
    max_bytes = traitlets.Int(64 * 2**20).tag(sync=True)
    #: The last file: ``({"name", "type", "size", "content"},)``; not synced (it arrives
    #: as a message with a binary buffer).
    value = traitlets.Tuple()

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.on_msg(lambda _widget, content, buffers: self.receive(content, buffers))

    def receive(self, content: dict, buffers: list) -> None:
        """Take a message of the page: a file (one buffer) or a refused file's size."""
        if not isinstance(content, dict) or "name" not in content or "size" not in content:
            return
        refused = bool(content.get("refused")) or not buffers
        item = {"name": str(content["name"]), "type": str(content.get("type", "")),
                "size": int(content["size"]),
                "content": None if refused else buffers[0]}
        self.value = (item,)
