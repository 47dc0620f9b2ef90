"""Loading from the Hugging Face hub: the local cache first, the network only when it is needed and reachable."""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import urllib.parse
import urllib.request


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub (or the HTTPS proxy in use) opens within ``timeout``.

    huggingface_hub retries unreachable hosts with back-off for about a minute and a
    half; asking first turns "offline" into an immediate, clear answer.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urllib.parse.urlparse(endpoint)
    host, port = (
        parsed.hostname or "huggingface.co",
        parsed.port or (443 if parsed.scheme == "https" else 80),
    )
    proxy = urllib.request.getproxies().get(parsed.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host, port = p.hostname or host, p.port or 80
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def from_pretrained(loader, source: str, **kwargs):
    """``loader.from_pretrained(source)`` from the cache if it is there, else downloaded.

    Raises ``OSError`` (as transformers does) when the files are neither cached nor
    downloadable; the message then says the hub could not be reached.
    """
    if os.path.isdir(os.path.expanduser(source)):
        return loader.from_pretrained(os.path.expanduser(source), **kwargs)
    try:
        return loader.from_pretrained(source, local_files_only=True, **kwargs)
    except OSError:
        pass  # not cached (or only partly): download
    if not hub_reachable():
        raise OSError(f"the Hugging Face hub cannot be reached and '{source}' is not in the cache")
    return loader.from_pretrained(source, **kwargs)


@contextlib.contextmanager
def no_loading_bars(*libraries: str):
    """The libraries' own bars ("Loading weights", "Loading pipeline components") off.

    They would cut through our stage bars and the worker's log. The hub's download bars
    stay on (transformers turns them off with its own): a first download is long and
    worth watching.
    """
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars

    hub_bars = not are_progress_bars_disabled()
    restore = []
    for name in libraries:
        try:
            lib = importlib.import_module(f"{name}.utils.logging")
        except ImportError:
            continue
        if lib.is_progress_bar_enabled():
            lib.disable_progress_bar()
            restore.append(lib)
    if hub_bars:
        enable_progress_bars()
    try:
        yield
    finally:
        for lib in restore:
            lib.enable_progress_bar()
