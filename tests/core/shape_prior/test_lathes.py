"""The lathe prior on generated lathe objects it was not tuned on: near the horizon, round and pointed tops, facets."""

from __future__ import annotations

import pytest

from core.oracle.lathes import random_lathe
from core.oracle.scores import whole_object_score
from core.surface.build import reconstruct_surface
from core.surface.cloud import point_cloud


@pytest.mark.parametrize(
    ("seed", "family", "elevation"),
    [
        (3, "dome", 3),  # near the horizon: the ends were left open (taken for a ring's hole)
        (5, "dome", 0),
        (4, "pointed", 2),  # a cone's point seen from the side
        (9, "egg", 30),  # both ends round: the lower one was closed flat
        (13, "faceted", 5),  # flat facets: their normal lines miss the axis
        (0, "vase", 0),  # flaring to a flat base: closed flat, not ballooned
    ],
)
def test_a_generated_lathe_object_is_completed_whole(seed, family, elevation):
    s = random_lathe(seed, width=240, height=180, family=family, elevation=elevation, fill=0.8)
    cloud = point_cloud(s.depth, s.rgb, s.mask, s.intrinsics)
    mesh, info = reconstruct_surface(cloud, s.depth, s.rgb, s.mask, s.intrinsics, shape="auto")
    assert info["shape"] == "revolve", info["shape_note"]
    assert info["watertight"]
    assert whole_object_score(mesh, s)["f_score"] >= 0.9
