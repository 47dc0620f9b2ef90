"""Smoke test of the benchmark (bench/run.py --quick): it runs end to end and writes every table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_benchmark_writes_its_report(tmp_path):
    out, data = tmp_path / "docs" / "benchmarks.md", tmp_path / "quick.json"
    run = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--out", out, "--json", data]
        + ["--workdir", tmp_path / "work"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    results = json.loads(data.read_text())
    timing = results["timing"]
    assert {"original 160x120", "ours 160x120", "ours cli 160x120"} <= set(timing)
    ours = timing["ours 160x120"][0]
    # the first run exported and verified the depth graph, so later runs used it
    assert "verified against PyTorch" in results["first_run"]["glpn"]["depth"]["backend_note"]
    assert ours["first"]["backend"] == "onnxruntime"
    fresh = {"mask": False, "depth": False, "pointcloud": False, "surface": False}
    assert ours["second"]["cache"] == fresh
    # re-meshes of the first photo after the second: its point cloud is still kept, and a
    # new thickness stretches its closed solid instead of solving Poisson again
    caches = [r["cache"] for r in ours["remesh"]]
    assert [r["change"] for r in ours["remesh"]] == [
        {"thickness": 0.3},
        {"open": True},
        {"mesh": "grid"},
    ]
    kept = {"mask": True, "depth": True, "pointcloud": True}
    assert caches == [
        {**kept, "surface": True},
        {**kept, "surface": False},
        {**kept, "surface": False},
    ]
    assert timing["original 160x120"][0]["counts"]["triangles"] > 0
    sphere = results["geometry"]["sphere"]
    assert sphere["ours (default: closed solid)"]["scores"]["watertight"]
    assert 0 <= sphere["original"]["scores_own_camera"]["spill"] <= 1
    # the stages after the networks on network-like depth: every scene timed, its mesh
    # stage split into parts that add up to it
    realistic = results["stages"]["scenes"]
    assert set(realistic) == {"toy", "mug"}
    for row in realistic.values():
        assert row["stages"]["mesh"] > 0 and row["stages"]["preview"] > 0
        assert abs(sum(row["parts"].values()) - row["stages"]["mesh"]) < 1e-6
        assert row["parts"]["Poisson solve"] > 0

    text = out.read_text()
    for heading in (
        "## Machine and versions",
        "## Targets (160x120, GLPN-NYU architecture)",
        "## Time per stage, 160x120 photo",
        "## What each lever bought",
        "## Warm process: second photo and cached re-mesh",
        "## Geometry on oracle scenes",
        "## The stages after the networks, on realistic depth",
        "## The very first run",
    ):
        assert heading in text
    measures = [t["measure"] for t in results["targets"]]
    for measure in (
        "start-up: imports + model load",
        "depth network forward, same resolution, same output",
        "point cloud, cleaning, normals",
        "Poisson meshing incl. closing/trimming",
        "end-to-end default",
        "second image in a warm process",
        "`--mesh grid` meshing stage alone",
        "writing on realistic depth: texture + GLB + preview, median",
        "cached re-mesh with `--open` (warm process)",
        "peak memory (RSS)",
        "oracle `sphere`: completeness / spill (default)",
    ):
        assert measure in measures
        assert f"| {measure} |" in text
    assert "python bench/run.py" in text and "Smoke test" in text
    plot = out.parent / "images" / "benchmark-stages-quick.png"
    assert f"]({plot.relative_to(out.parent)})" in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # --render writes the same report from the saved results, measuring nothing
    again = tmp_path / "again" / "benchmarks.md"
    render = subprocess.run(
        [sys.executable, "bench/run.py", "--render", data, "--out", again],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert render.returncode == 0, render.stderr[-3000:]
    assert again.read_text() == text
    assert (again.parent / "images" / plot.name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
