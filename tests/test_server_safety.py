"""The dashboard server is safe to leave running: it listens on loopback only, refuses
oversized messages before reading them, reads typed paths only inside the allowed folders,
culls idle kernels, and every callback's exception becomes a message in the page.

The server tests start real voila servers (no browser) on free loopback ports, each with
a trivial notebook in a temporary folder, so that they exercise the configuration files
and command line without the cost of the dashboards' kernels.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import numpy as np
import pytest
from browser import ROOT, free_port, run_async
from dashboards.entropy_map import EntropyMap
from dashboards.format_anatomy import FormatAnatomy
from dashboards.layer_explorer import MAX_UPLOAD_BYTES, LayerExplorer
from dashboards.network_overview import NetworkOverview
from dashboards.paths import ALLOWED_DIRS_ENV, PROJECT_DIR, PathNotAllowedError, checked_path
from dashboards.ui import fmt_bytes

import lowentropy as le

APP = ROOT / "app"
CONFIG = json.loads((APP / "voila.json").read_text())


def load_tasks():
    sys.path.insert(0, str(ROOT))
    try:
        import tasks
    finally:
        sys.path.pop(0)
    return tasks


# --- servers ------------------------------------------------------------------------------


class Server:
    """``cmd`` run in ``folder`` (which holds ``idle.ipynb`` and maybe a ``voila.json``)."""

    def __init__(self, folder: Path, cmd: list[str], port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = folder / f"voila-{port}.log"
        self._out = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=folder, stdout=self._out,
                                     stderr=subprocess.STDOUT, env={**os.environ})
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"voila exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/voila/static/voila.js", timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def render(self, notebook: str = "idle.ipynb") -> str:
        """Execute a notebook (starts a kernel); the kernel id written into the page."""
        with urllib.request.urlopen(f"{self.url}/voila/render/{notebook}", timeout=60) as r:
            page = r.read().decode()
        marker = '"kernelId": "'
        start = page.index(marker) + len(marker)
        return page[start:page.index('"', start)]

    def kernels(self) -> list[int]:
        """Process ids of the kernels (children of the server running ipykernel)."""
        return [pid for pid in children(self.proc.pid) if b"ipykernel" in cmdline(pid)]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._out.close()


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def idle_folder(folder: Path, config: dict | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(nb, folder / "idle.ipynb")
    if config is not None:
        (folder / "voila.json").write_text(json.dumps(config))
    return folder


def app_server(folder: Path) -> Server:
    """A server started exactly as ``python3 tasks.py app`` starts it, in ``folder``."""
    port = free_port()
    return Server(folder, load_tasks().app_command(sys.executable, port), port)


def accepts(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as s:
        s.settimeout(2)
        try:
            s.connect((address, port))
        except OSError:
            return False
        return True


def local_addresses() -> set[str]:
    """The machine's own non-loopback IPv4 addresses (from the kernel's routing table)."""
    found = set()
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
    except OSError:
        lines = []
    for prev, line in zip(lines, lines[1:], strict=False):
        if "/32 host LOCAL" in line:
            found.add(prev.strip().split()[-1])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: picks the outgoing address
            found.add(s.getsockname()[0])
        except OSError:
            pass
    return {a for a in found if not a.startswith("127.") and a != "0.0.0.0"}


# --- listening on loopback only -----------------------------------------------------------


def test_the_app_command_and_the_config_bind_loopback():
    cmd = load_tasks().app_command(Path(sys.executable), 8866)
    assert "--Voila.ip=127.0.0.1" in cmd
    assert CONFIG["Voila"]["ip"] == "127.0.0.1"  # voila run by hand in app/ too


def test_the_app_server_does_not_listen_beyond_loopback(tmp_path):
    # A configuration that opens the server to the network (as a user's voila.json
    # could): the command's own --Voila.ip must win over it.
    folder = idle_folder(tmp_path, {"Voila": {"ip": "0.0.0.0"}})
    others = sorted(local_addresses() | {"127.0.0.2"})  # 127.0.0.2: reached by 0.0.0.0 only
    port = free_port()
    opened = Server(folder, [sys.executable, "-m", "voila", ".", "--no-browser",
                             f"--port={port}"], port)
    try:  # the probe can tell: a server open to the network answers on these addresses
        assert all(accepts(a, port) for a in others), others
    finally:
        opened.stop()
    server = app_server(folder)
    try:
        assert accepts("127.0.0.1", server.port)
        reached = [a for a in others if accepts(a, server.port)]
        assert reached == [], f"the dashboards server answers on {reached}"
    finally:
        server.stop()


# --- message size, culling: a server with the app's configuration -----------------------


@pytest.fixture(scope="module")
def app_config_server(tmp_path_factory):
    """The app's voila.json, with the culling times shortened for the test."""
    config = json.loads(json.dumps(CONFIG))
    config["MappingKernelManager"].update(cull_idle_timeout=2, cull_interval=1)
    server = app_server(idle_folder(tmp_path_factory.mktemp("voila-app-config"), config))
    yield server
    server.stop()


def test_the_message_size_limit_leaves_room_for_an_upload_and_no_more():
    limit = CONFIG["Voila"]["tornado_settings"]["websocket_max_message_size"]
    assert MAX_UPLOAD_BYTES + 2**20 <= limit <= 256 * 2**20


def binary_message(channel: str, msg_type: str, content: dict, buffer: bytes) -> bytes:
    """A message in Jupyter's websocket binary framing (no subprotocol): the number of
    parts, their offsets, the JSON, then the buffers."""
    msg = {"channel": channel, "header": {
        "msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": uuid.uuid4().hex,
        "username": "test", "version": "5.3"}, "parent_header": {}, "metadata": {},
        "content": content}
    head = json.dumps(msg).encode()
    offsets = [4 * 3, 4 * 3 + len(head)]
    return struct.pack("!iII", 2, *offsets) + head + buffer


async def _talk(url: str, sizes: list[int]) -> list[str]:
    """Send a comm message carrying each buffer size, then ask for the kernel's info;
    what happened to each: "answered" or "closed <code>"."""
    from tornado.websocket import WebSocketClosedError, websocket_connect

    out = []
    for size in sizes:
        ws = await websocket_connect(url, max_message_size=2**30)
        try:
            await ws.write_message(binary_message(
                "shell", "comm_msg", {"comm_id": "none", "data": {}}, b"\0" * size),
                binary=True)
        except WebSocketClosedError:  # closed by the server while still sending
            pass
        info = {"channel": "shell", "header": {
            "msg_id": uuid.uuid4().hex, "msg_type": "kernel_info_request",
            "session": uuid.uuid4().hex, "username": "test", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "content": {}}
        try:
            await ws.write_message(json.dumps(info))
        except WebSocketClosedError:
            pass
        result = None
        while result is None:
            reply = await asyncio.wait_for(ws.read_message(), 60)
            if reply is None:
                result = f"closed {ws.close_code}"
            elif isinstance(reply, str) and '"kernel_info_reply"' in reply:
                result = "answered"
        ws.close()
        out.append(result)
    return out


def test_the_server_takes_an_upload_sized_message_and_refuses_a_bigger_one(
        app_config_server):
    server = app_config_server
    kernel = server.render()
    limit = CONFIG["Voila"]["tornado_settings"]["websocket_max_message_size"]
    url = f"ws://127.0.0.1:{server.port}/api/kernels/{kernel}/channels"
    small, big = MAX_UPLOAD_BYTES // 4, limit + 1  # small: over tornado's 10 MiB default
    first, second, third = run_async(_talk(url, [small, big, 100]))
    assert first == "answered" and third == "answered"
    assert second.startswith("closed")  # 1009 "message too big", if the client hears it
    with urllib.request.urlopen(server.url + "/voila/static/voila.js", timeout=5):
        pass  # still serving


def test_idle_kernels_are_culled_by_the_app_config(app_config_server):
    assert 0 < CONFIG["MappingKernelManager"]["cull_idle_timeout"] <= 3600
    assert 0 < CONFIG["MappingKernelManager"]["cull_interval"] <= (
        CONFIG["MappingKernelManager"]["cull_idle_timeout"])
    server = app_config_server
    before = set(server.kernels())
    server.render()  # the page is never opened: its kernel stays idle, unconnected
    new = set(server.kernels()) - before
    assert new, "rendering did not start a kernel"
    deadline = time.monotonic() + 30
    while new & set(server.kernels()):
        assert time.monotonic() < deadline, "the idle kernel was not culled"
        time.sleep(0.5)
    assert "Culling kernels with idle durations > 2 seconds" in server.log.read_text()


# --- upload size ----------------------------------------------------------------------------


def small_network() -> le.Network:
    rng = np.random.default_rng(0)
    return le.Network("demo", [le.Layer("fc", rng.standard_normal((16, 32)).astype(np.float32))])


@pytest.fixture
def explorer():
    return LayerExplorer(small_network(), measure=False, synchronous=True)


def test_the_upload_limit_comes_from_the_environment():
    code = ("import dashboards.layer_explorer as m, dashboards.paths; "
            "print(m.MAX_UPLOAD_BYTES)")
    env = {**os.environ, "LOWENTROPY_MAX_UPLOAD_MB": "3", "PYTHONPATH": str(APP)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert int(out.stdout) == 3 * 2**20


def test_an_upload_over_the_limit_is_refused_before_it_is_read(explorer, monkeypatch):
    import dashboards.layer_explorer as mod

    opened = []
    monkeypatch.setattr(mod.le, "load_network", lambda *a, **k: opened.append(a))
    monkeypatch.setattr(mod, "MAX_UPLOAD_BYTES", 1000)
    explorer.upload.set_trait("value", ({"name": "big.npz", "type": "", "size": 1001,
                                         "content": memoryview(b"x" * 1001),
                                         "last_modified": datetime.now(UTC)},))
    assert "upload limit" in explorer.messages.widget.value and opened == []
    assert explorer.network.name == "demo"


def test_the_page_states_the_upload_limit(explorer):
    assert f"uploads up to {fmt_bytes(MAX_UPLOAD_BYTES)}" in explorer.upload_note.value


def test_an_upload_at_the_limit_is_read(explorer, monkeypatch, tmp_path):
    import dashboards.layer_explorer as mod

    path = tmp_path / "m.npz"
    np.savez(path, fc9=np.ones((3, 5), np.float32))
    data = path.read_bytes()
    monkeypatch.setattr(mod, "MAX_UPLOAD_BYTES", len(data))
    explorer.load_upload([{"name": "m.npz", "size": len(data), "content": data}])
    assert explorer.network.name == "m.npz" and explorer.layer.name == "fc9"


# --- typed paths --------------------------------------------------------------------------


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """An allowed folder with a model, and a model outside it."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    np.savez(allowed / "inside.npz", fc_in=np.ones((4, 6), np.float32))
    np.savez(outside / "secret.npz", fc_secret=np.ones((4, 6), np.float32))
    monkeypatch.setenv(ALLOWED_DIRS_ENV, str(allowed))
    return allowed, outside


def load_typed(ex: LayerExplorer, text: str) -> str:
    ex.messages.clear()
    ex.path_text.value = text
    ex.path_button.click()
    return ex.messages.widget.value


def test_a_path_inside_the_allowed_folder_loads(explorer, folders):
    allowed, _ = folders
    assert load_typed(explorer, str(allowed / "inside.npz")) == ""
    assert explorer.layer.name == "fc_in"
    explorer.set_network(small_network())
    assert load_typed(explorer, "inside.npz") == ""  # relative: from the allowed folder
    assert explorer.layer.name == "fc_in"


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink", "system file"])
def test_a_path_outside_the_allowed_folders_is_refused(explorer, folders, how):
    allowed, outside = folders
    if how == "absolute":
        text = str(outside / "secret.npz")
    elif how == "dotdot":
        text = str(allowed / ".." / "outside" / "secret.npz")
    elif how == "symlink":
        (allowed / "link.npz").symlink_to(outside / "secret.npz")
        text = str(allowed / "link.npz")
    else:
        text = "/etc/passwd"
    message = load_typed(explorer, text)
    assert "PathNotAllowedError" in message and str(allowed) in message
    assert ALLOWED_DIRS_ENV in message  # how to allow more
    assert explorer.network.name == "demo"  # nothing was read


def test_a_folder_linked_into_the_allowed_one_is_refused(explorer, folders):
    allowed, outside = folders
    (allowed / "elsewhere").symlink_to(outside, target_is_directory=True)
    assert "PathNotAllowedError" in load_typed(explorer, str(allowed / "elsewhere" /
                                                             "secret.npz"))


def test_several_allowed_folders_and_embedded_names(explorer, folders, monkeypatch):
    allowed, outside = folders
    monkeypatch.setenv(ALLOWED_DIRS_ENV, os.pathsep.join([str(allowed), str(outside)]))
    assert load_typed(explorer, str(outside / "secret.npz")) == ""
    monkeypatch.setenv(ALLOWED_DIRS_ENV, str(allowed))
    assert load_typed(explorer, "lenet-300-100") == ""  # a name, not a file
    assert explorer.network.name == "lenet-300-100"


def test_the_default_allowed_folder_is_the_project(monkeypatch, tmp_path):
    monkeypatch.delenv(ALLOWED_DIRS_ENV, raising=False)
    assert PROJECT_DIR == ROOT.resolve()
    assert checked_path("app/voila.json") == (APP / "voila.json").resolve()
    with pytest.raises(PathNotAllowedError, match="outside the folders"):
        checked_path(tmp_path / "x.npz")


@pytest.mark.parametrize("bad, error", [("", ValueError), ("a\0b", ValueError),
                                        (3, TypeError)])
def test_checked_path_rejects_non_paths(bad, error):
    with pytest.raises(error):
        checked_path(bad)


# --- every callback's exception becomes a message ----------------------------------------


def dashboards_under_test() -> dict[str, object]:
    net = small_network()
    return {
        "layer explorer": LayerExplorer(net, measure=False, synchronous=True),
        "network overview": NetworkOverview(net, synchronous=True),
        "format anatomy": FormatAnatomy(),
        "entropy map": EntropyMap(shape=(128, 512), resolution=4, time_cells=2,
                                  time_budget=0.01, synchronous=True),
    }


def widgets_of(root) -> list:
    out, todo = [], [root]
    while todo:
        widget = todo.pop()
        out.append(widget)
        todo.extend(getattr(widget, "children", ()))
    return out


def callbacks_of(widget) -> list:
    """Every callback registered on a widget: trait observers, button clicks, and for a
    FigureWidget the click/hover/selection callbacks of its traces."""
    found = []
    for by_type in getattr(widget, "_trait_notifiers", {}).values():
        for handlers in by_type.values():
            found += list(handlers)
    clicks = getattr(widget, "_click_handlers", None)
    if clicks is not None:
        found += list(clicks.callbacks)
    for trace in getattr(widget, "data", ()):
        for name in ("_click_callbacks", "_hover_callbacks", "_select_callbacks",
                     "_deselect_callbacks"):
            found += list(getattr(trace, name, ()))
    return found


def test_every_dashboard_callback_is_guarded():
    for name, dash in dashboards_under_test().items():
        ours = []
        for widget in widgets_of(dash.widget):
            for cb in callbacks_of(widget):
                fn = getattr(cb, "__func__", cb)
                if getattr(fn, "__module__", "").startswith("dashboards"):
                    ours.append((widget, fn))
        assert len(ours) >= 5, name  # the walk found the controls
        unguarded = [f"{type(w).__name__}: {f.__qualname__}" for w, f in ours
                     if not getattr(f, "guarded", False)]
        assert unguarded == [], f"{name}: callbacks without Messages.guard: {unguarded}"


class LibraryFailure(RuntimeError):
    pass


def break_library(monkeypatch) -> None:
    """Make every library entry point the dashboards use raise."""

    def boom(*args, **kwargs):
        raise LibraryFailure("the library failed on purpose")

    for name in ("stats", "compare", "load_network", "prune", "quantize",
                 "quantization_error", "get_format", "accuracy"):
        monkeypatch.setattr(le, name, boom)
    for cls in le.FORMATS.values():
        monkeypatch.setattr(cls, "from_dense", classmethod(boom))
        monkeypatch.setattr(cls, "storage_for", classmethod(boom))
        for method in ("arrays", "storage", "op_counts", "to_dense", "__matmul__"):
            monkeypatch.setattr(cls, method, boom)
    import dashboards.entropy_map as em
    import dashboards.layer_explorer as lx
    import dashboards.model as model
    import dashboards.network_overview as no

    for module, name in ((model, "time_formats"), (lx, "read_bandwidth"),
                         (no, "network_report"), (em, "stats_grid"), (em, "cost_grid"),
                         (em, "time_cells")):
        monkeypatch.setattr(module, name, boom)


# (dashboard, control attribute, value set while the library fails, value set after)
MOVES = [
    ("layer explorer", "prune_slider", 0.5, 0.7),
    ("layer explorer", "quantizer", "uniform", "none"),
    ("layer explorer", "bits_slider", 3, 4),
    ("layer explorer", "clusters_slider", 8, 16),
    ("layer explorer", "policy_picker", "fixed32", "minimal"),
    ("layer explorer", "value_bits_picker", 16, 8),
    ("layer explorer", "table_picker", None, None),
    ("layer explorer", "network_picker", "lenet-5", "lenet-300-100"),
    ("layer explorer", "path_button", "click", "click"),
    ("network overview", "prune_slider", 0.5, 0.7),
    ("network overview", "quantizer", "uniform", "none"),
    ("network overview", "global_box", True, False),
    ("network overview", "value_bits_picker", 16, 8),
    ("network overview", "network_picker", "lenet-5", "lenet-300-100"),
    ("format anatomy", "source", "random", "padding"),
    ("format anatomy", "new_random_button", "click", "click"),
    ("format anatomy", "format_picker", "cser", "cer"),
    ("format anatomy", "policy_picker", "fixed32", "minimal"),
    ("entropy map", "resolution_slider", 5, 6),
    ("entropy map", "policy_picker", "fixed32", "minimal"),
    ("entropy map", "batch_picker", 8, 64),
    ("entropy map", "network_picker", "lenet-5", "lenet-300-100"),
]


@pytest.fixture(scope="module")
def boards():
    return dashboards_under_test()


def _act(dash, control: str, value) -> None:
    widget = getattr(dash, control)
    if value == "click":
        widget.click()
    elif value is None:  # the other option
        widget.value = next(v for v in widget.options if v != widget.value)
    else:
        widget.value = value


@pytest.mark.parametrize("name, control, broken, fixed", MOVES,
                         ids=[f"{m[0]}-{m[1]}" for m in MOVES])
def test_a_library_error_in_a_callback_is_shown_and_the_dashboard_recovers(
        boards, monkeypatch, name, control, broken, fixed):
    dash = boards[name]
    if control == "path_button":
        dash.path_text.value = "lenet-5"
    # a level slider counts only for its own quantizer (other moves recompute nothing)
    quantizer = {"bits_slider": "uniform", "clusters_slider": "kmeans"}.get(control)
    if quantizer is not None:
        dash.quantizer.value = quantizer
    dash.messages.clear()
    with monkeypatch.context() as m:
        break_library(m)
        _act(dash, control, broken)
    shown = dash.messages.widget.value
    assert "lowentropy-error" in shown and "the library failed on purpose" in shown
    dash.messages.clear()
    _act(dash, control, fixed)
    assert "lowentropy-error" not in dash.messages.widget.value
    if hasattr(dash, "describe"):
        assert dash.describe()  # still answers
