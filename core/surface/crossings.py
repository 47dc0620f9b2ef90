"""Keeping a closed surface a valid volume through every step that moves its vertices: count the crossings a step made, send them back."""

from __future__ import annotations

import numpy as np

from ..geometry.mesh import Mesh
from ..solid.repair import repair_limit, untangle
from ..solid.search import crossing_pairs


def cleaned(vertices: np.ndarray, faces: np.ndarray, keep=None) -> tuple[np.ndarray, int]:
    """A freshly meshed closed surface with its touching and crossing faces relaxed apart.

    Returns float32-exact vertices and the crossing pairs left, counted on those values
    (where the relaxation moved vertices; the rest was counted before).
    """
    return untangle(f32(vertices), faces, rounds=20, keep=keep, float32=True)


def count_crossings(vertices: np.ndarray, faces: np.ndarray, active=None) -> int:
    """Crossing pairs (among ``active`` faces), or more than repair_limit when beyond it."""
    limit = repair_limit(len(faces))
    pairs, complete = crossing_pairs(vertices, faces, active, limit=limit + 1)
    return len(pairs) if complete else max(len(pairs), limit + 1)


def count_all_crossings(vertices: np.ndarray, faces: np.ndarray) -> tuple[int, bool]:
    """Crossing pairs of the whole surface, and whether that is all of them (bounded search)."""
    left = count_crossings(vertices, faces)
    return left, left <= repair_limit(len(faces))


def settle(
    vertices, faces, anchor, anchor_crossings: int, step: str, warnings: list[str]
) -> tuple[np.ndarray, int, bool]:
    """``vertices`` after a step that moved them from ``anchor`` (``anchor_crossings`` pairs).

    Only the faces with a moved vertex are searched (bounded); where they cross, their
    vertices go back toward the anchor (:func:`core.solid.untangle`). Returns the
    float32-exact vertices, the crossing pairs left and whether that count is complete.
    When the anchor itself crossed (the count is then not local), the whole surface is
    counted once more: the report stays true on a surface that is no valid volume anyway.
    When the repair leaves crossings that the anchor did not have (rare: a very thick
    solid folded by its stretch), the step is undone: the anchor is returned, and
    ``warnings`` says so, naming the ``step``.
    """
    v, anchor = f32(vertices), f32(anchor)
    moved = np.any(v != anchor, axis=1)
    if not moved.any():
        return v, anchor_crossings, True
    out, left = untangle(v, faces, anchor, rounds=20, float32=True)
    if 0 < left <= repair_limit(len(faces)):
        # Faces that touch even where the anchor is (the anchor was checked at its own
        # size, smaller than a thickened solid's): relaxed apart where they are.
        out, left = untangle(out, faces, rounds=20, float32=True)
    complete = left <= repair_limit(len(faces))
    if complete and (anchor_crossings or left):
        left, complete = count_all_crossings(out, faces)
    if left and anchor_crossings == 0:
        warnings.append(
            f"The {step} made faces cross that could not be repaired, so it was not applied "
            "to the solid."
        )
        return anchor, 0, True
    return out, left, complete


def beyond_repair(solid: Mesh) -> int:
    """The crossing pairs a closed Poisson solid was left with when beyond repair, else 0."""
    return _beyond(getattr(solid, "crossings", 0), len(solid.faces))


def _beyond(crossings: int, n_faces: int) -> int:
    return crossings if crossings > repair_limit(n_faces) else 0


def f32(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).astype(np.float64)


def invalid_volume_warning(volume: dict) -> str:
    if not volume.get("self_intersections_counted", True):
        why = "its faces cross each other in too many places to count or repair"
    elif volume["self_intersections"]:
        why = f"{volume['self_intersections']} pairs of its faces cross each other"
    elif not volume["vertex_manifold"]:
        why = "some of its vertices join surfaces that only touch there"
    elif not volume["oriented"] or volume["volume"] <= 0:
        why = "its faces are not all wound outward"
    else:
        why = "it is not closed"
    return (
        f"The closed surface is not a valid volume ({why}); Booleans and 3D printing may "
        "fail on it."
    )
