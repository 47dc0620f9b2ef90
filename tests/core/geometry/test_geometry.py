"""Pure geometry: the camera's projection, image sampling between pixel centres, mesh topology."""

from __future__ import annotations

import numpy as np
import pytest

from core.geometry.camera import intrinsics_from_fov
from core.geometry.sampling import bilinear, nearest_inside, projects_into
from core.geometry.topology import (
    border_mask,
    compact,
    drop_small_pieces,
    face_areas,
    half_edges,
    is_closed,
    separate_sheets,
    vertex_normals,
)

# a closed tetrahedron wound outward, and a square of two triangles (open)
TETRA_V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
TETRA_F = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]])
SQUARE_V = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
SQUARE_F = np.array([[0, 1, 2], [0, 2, 3]])


def test_bilinear_reads_between_pixel_centres_for_grey_and_colour_images():
    grey = np.array([[0.0, 10.0], [20.0, 30.0]])
    # pixel centres at integers: the middle of the four is their mean, the sides clamp
    assert bilinear(grey, np.array([0.5]), np.array([0.5]))[0] == pytest.approx(15.0)
    assert bilinear(grey, np.array([-3.0, 9.0]), np.array([0.0, 1.0])).tolist() == [0.0, 30.0]
    colour = np.stack([grey, 2 * grey, np.full_like(grey, 7)], axis=-1).astype(np.uint8)
    out = bilinear(colour, np.array([0.25]), np.array([1.0]))
    assert out.shape == (1, 3) and out.dtype == np.float64
    np.testing.assert_allclose(out[0], [22.5, 45.0, 7.0])
    # one pixel wide or high: no neighbour to read, the pixel itself
    assert bilinear(np.array([[5.0]]), np.array([0.7]), np.array([0.2]))[0] == 5.0
    assert np.isfinite(bilinear(grey, np.array([np.nan]), np.array([0.0]))).all()


def test_projection_into_a_region_and_its_nearest_pixel():
    k = intrinsics_from_fov(8, 6, 60.0)
    region = np.zeros((6, 8), dtype=bool)
    region[2:4, 2:5] = True
    centre = np.array([[0.0, 0.0, 1.0]])  # straight ahead: the image's centre pixel
    u, v = k.project(centre)
    assert (u[0], v[0]) == pytest.approx((k.cx, k.cy))
    behind = np.array([[0.0, 0.0, -1.0]])
    assert projects_into(centre, region, k).tolist() == [True]
    assert projects_into(behind, region, k).tolist() == [False]
    rows, cols = nearest_inside(region)
    assert (rows[0, 0], cols[0, 0]) == (2, 2) and (rows[5, 7], cols[5, 7]) == (3, 4)


def test_topology_of_a_closed_and_an_open_surface():
    assert is_closed(TETRA_F) and not is_closed(SQUARE_F) and not is_closed(np.zeros((0, 3)))
    src, dst = half_edges(SQUARE_F)
    border = border_mask(src, dst)
    assert border.sum() == 4 and not border_mask(*half_edges(TETRA_F)).any()
    assert face_areas(SQUARE_V, SQUARE_F).tolist() == [0.5, 0.5]
    normals = vertex_normals(TETRA_V, TETRA_F)
    outward = TETRA_V - TETRA_V.mean(axis=0)
    assert (np.einsum("ij,ij->i", normals, outward) > 0).all()
    # unused vertices go and the faces are renumbered
    v, f = compact(np.vstack([[[9, 9, 9]], TETRA_V]), TETRA_F + 1)
    assert len(v) == 4 and np.array_equal(f, TETRA_F)


def test_small_pieces_go_and_touching_sheets_are_separated():
    tiny = TETRA_V * 0.01 + 5.0
    v = np.vstack([TETRA_V, tiny])
    f = np.vstack([TETRA_F, TETRA_F + 4])
    kept = drop_small_pieces(v, f, 0.01)
    assert np.array_equal(kept, TETRA_F)
    # two tetrahedra sharing an edge: four faces on it, separated into two closed sheets
    other = TETRA_V.copy()
    other[2:] *= -1  # shares vertices 0 and 1 (the edge 0-1)
    v = np.vstack([TETRA_V, other[2:]])
    f2 = TETRA_F.copy()
    f2[f2 >= 2] += 2
    f2 = f2[:, ::-1]  # mirrored: wound outward again
    faces = np.vstack([TETRA_F, f2])
    assert not is_closed(faces)
    v_new, f_new = separate_sheets(v, faces)
    assert is_closed(f_new) and len(v_new) > len(v)
