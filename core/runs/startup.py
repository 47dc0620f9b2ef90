"""Start-up trimming: Open3D's plotly helpers imported when first used.

``import open3d`` imports ``open3d.visualization.draw_plotly``, which imports plotly
and Dash (a web framework): about a second of a two-second import, for functions we
never call. :func:`defer_open3d_plotly` puts a stand-in for that one module in
``sys.modules`` before Open3D is imported; the stand-in loads the real module the
moment anything of it is used, so ``o3d.visualization.draw_plotly(...)`` still works.
"""

from __future__ import annotations

import importlib
import sys
import types

_PLOTLY = "open3d.visualization.draw_plotly"
_NAMES = ("get_plotly_fig", "draw_plotly", "draw_plotly_server")


class _Deferred(types.ModuleType):
    """Stands in for ``open3d.visualization.draw_plotly`` until one of its names is used."""

    def __getattr__(self, name: str):
        if name.startswith("__"):  # the import system's own questions (__path__, ...)
            raise AttributeError(name)
        return getattr(_load_real(), name)


def _load_real() -> types.ModuleType:
    if isinstance(sys.modules.get(_PLOTLY), _Deferred):
        del sys.modules[_PLOTLY]
    real = importlib.import_module(_PLOTLY)
    visualization = sys.modules.get("open3d.visualization")
    if visualization is not None:
        for name in _NAMES:
            if hasattr(real, name):
                setattr(visualization, name, getattr(real, name))
    return real


def _forwarder(name: str):
    def call(*args, **kwargs):
        return getattr(_load_real(), name)(*args, **kwargs)

    call.__name__ = name
    call.__doc__ = f"Open3D's {name}, imported on first use (see core.runs.startup)."
    return call


def defer_open3d_plotly() -> bool:
    """Install the stand-in if Open3D is not imported yet; True if it was installed."""
    if "open3d" in sys.modules or _PLOTLY in sys.modules:
        return False
    stub = _Deferred(_PLOTLY)
    stub.__dict__.update({name: _forwarder(name) for name in _NAMES})
    sys.modules[_PLOTLY] = stub
    return True
