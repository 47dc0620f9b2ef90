"""Start-up trimming: Open3D without plotly and Dash until they are used, imports made ahead."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys, time
from core.runs.pipeline import Pipeline
Pipeline()
import open3d
assert "dash" not in sys.modules and "plotly" not in sys.modules, "plotly imported with open3d"
import numpy as np
# Open3D's plotly helpers still work: they import plotly and Dash when first used
cloud = open3d.geometry.PointCloud(open3d.utility.Vector3dVector(np.random.rand(20, 3)))
figure = open3d.visualization.get_plotly_fig([cloud])
assert type(figure).__name__ == "Figure" and len(figure.data) == 1
assert "dash" in sys.modules
from open3d.visualization.draw_plotly import draw_plotly_server
assert callable(draw_plotly_server) and callable(open3d.visualization.draw_plotly)
print("ok")
"""


def test_open3d_comes_without_plotly_until_it_is_used():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
