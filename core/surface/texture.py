"""UV texture from the photo: faces the camera sees take its pixels, hidden faces a filled atlas.

The atlas has two regions. On top, the photo itself at its original resolution (not the
working copy), cropped to the object and scaled down only when it would not fit
``size``: faces the camera sees (front-facing within
:data:`core.surface.visibility.GRAZING_DEG`, not hidden by another part of the mesh) get
UVs that are their projection through the run's camera, so each texel is a photo pixel.
Below it, one small cell per hidden face (the back, faces seen edge-on): its corners sit
on texel centres and the whole cell holds the linear interpolation of the face's corner
colours, so bilinear sampling anywhere in the face gives exactly that interpolation and
no texel a face samples is ever empty. The corner colours are the mesh's vertex colours
(on the hidden side, filled from the seen surface's rim: core.surface.hidden_colours),
except where a hidden face touches a seen one: there the corner takes the photo's colour
at that vertex, so the two sides meet without a seam line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..geometry.camera import Intrinsics
from ..geometry.sampling import bilinear
from ..geometry.topology import face_areas
from .visibility import visible_faces

#: Longest side of the texture by default. 2048 holds the object crop of a 12-MP photo
#: at (nearly) full resolution, is within what every GPU and glTF viewer accepts (WebGL
#: guarantees 4096 only on desktops; phones' minimum is 2048 or 4096), and keeps a
#: GLB's embedded PNG at a few megabytes.
DEFAULT_TEXTURE_SIZE = 2048
MIN_TEXTURE_SIZE = 64
MAX_TEXTURE_SIZE = 16384


#: Photo pixels kept around the object's silhouette (working-image pixels).
CROP_MARGIN_PX = 4


@dataclass
class Texture:
    """A colour texture and where each face corner samples it.

    image: (H, W, 3) uint8 sRGB. uv: (M, 3, 2) float32, one row per face corner, in
    [0, 1] with (0, 0) the image's top-left corner and v growing downwards (the glTF
    convention; OBJ and Blender use 1 - v). seen: (M,) bool, the faces coloured from the
    photo. info: facts for the report (see :meth:`report`).
    """

    image: np.ndarray
    uv: np.ndarray
    seen: np.ndarray
    info: dict = field(default_factory=dict)
    _png: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])

    def png(self) -> bytes:
        """The image as PNG bytes (made once: GLB, OBJ and the worker share them)."""
        if self._png is None:
            self._png = encode_png(self.image)
        return self._png

    def split(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One vertex per distinct (vertex, UV) pair, as formats with one index per corner need.

        Returns (source vertex of each new vertex, its UV, the faces re-indexed). A seen
        face's UVs are a function of its vertices, so seen corners share vertices; each
        hidden face has its own cell, so its corners are vertices of their own.
        """
        faces = np.asarray(faces, dtype=np.int64)
        seen = self.seen
        seen_faces = faces[seen]
        seen_vertices, inverse = np.unique(seen_faces.ravel(), return_inverse=True)
        uv_seen = np.zeros((len(seen_vertices), 2), np.float32)
        uv_seen[inverse] = self.uv[seen].reshape(-1, 2)
        hidden_faces = faces[~seen]
        source = np.concatenate([seen_vertices, hidden_faces.ravel()])
        uv = np.concatenate([uv_seen, self.uv[~seen].reshape(-1, 2)])
        new_faces = np.empty_like(faces)
        new_faces[seen] = inverse.reshape(-1, 3)
        new_faces[~seen] = len(seen_vertices) + np.arange(hidden_faces.size).reshape(-1, 3)
        return source, uv.astype(np.float32), new_faces.astype(np.int32)

    def report(self) -> dict:
        """JSON-ready facts: size, how much of it is the photo, where it came from."""
        return {"width": self.size[0], "height": self.size[1], **self.info}


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image. Lossless (JPEG's 8x8 blocks would bleed hidden
    faces' small cells into each other); zlib level 1 is ~5x faster than the default
    and only ~10% larger on photos."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def bake_texture(
    mesh_cam,
    working_rgb: np.ndarray,
    mask: np.ndarray,
    intrinsics: Intrinsics,
    original=None,
    *,
    size: int = DEFAULT_TEXTURE_SIZE,
    original_size: tuple[int, int] | None = None,
) -> Texture:
    """The texture of ``mesh_cam`` (a :class:`core.geometry.mesh.Mesh` in the OpenCV camera frame).

    ``working_rgb``, ``mask`` and ``intrinsics`` are the run's working image, its
    foreground mask and camera; ``original`` the same photo at full resolution, an RGB
    Pillow image or (H, W, 3) array (None: the working image is all there is), or a
    function ``original(scale)`` giving the photo decoded at no less than ``scale`` of
    its full size (or None), with ``original_size`` its full (width, height): then only
    the resolution the texture can hold is decoded (a 48-MP JPEG at half or a quarter
    of its size). ``size`` caps the longer side.
    """
    from PIL import Image

    size = int(size)
    working_rgb = np.ascontiguousarray(np.asarray(working_rgb)[..., :3])
    h_w, w_w = working_rgb.shape[:2]
    v = mesh_cam.vertices.astype(np.float64)
    faces = mesh_cam.faces.astype(np.int64)
    mask = np.asarray(mask, dtype=bool)
    seen = visible_faces(v, faces, intrinsics)

    if callable(original):
        # decode no more of the photo than its crop can show at this texture size
        w_f, h_f = original_size or (w_w, h_w)
        *_, (cx0, cy0, cx1, cy1) = _crop(v, faces, seen, mask, intrinsics, (w_w, h_w), (w_f, h_f))
        original = original(min(1.0, size / max(1, cx1 - cx0, cy1 - cy0)))
    if original is None:
        original = working_rgb
    full = (
        original
        if isinstance(original, Image.Image)
        else Image.fromarray(np.ascontiguousarray(np.asarray(original)[..., :3]))
    )
    w_o, h_o = full.size
    pu, pv, (cx0, cy0, cx1, cy1) = _crop(v, faces, seen, mask, intrinsics, (w_w, h_w), (w_o, h_o))
    crop_w, crop_h = cx1 - cx0, cy1 - cy0

    n_hidden = int((~seen).sum())
    scale, cell, width, height = _layout(crop_w, crop_h, n_hidden, size)
    photo_w, photo_h = max(1, round(crop_w * scale)), max(1, round(crop_h * scale))
    scale_x, scale_y = photo_w / crop_w, photo_h / crop_h

    image = np.empty((height, width, 3), np.uint8)
    photo = _photo_region(full, working_rgb, mask, (cx0, cy0, cx1, cy1), (photo_w, photo_h))
    image[:photo_h, :photo_w] = photo
    mean = photo.reshape(-1, 3).mean(axis=0) if photo.size else np.full(3, 128.0)
    image[:photo_h, photo_w:] = mean.astype(np.uint8)
    image[photo_h:] = mean.astype(np.uint8)

    uv = np.zeros((len(faces), 3, 2), np.float32)
    # seen faces: texel = photo pixel; pixel i's centre is at texture x (i - cx0 + 0.5) * scale
    tx = (pu - cx0 + 0.5) * scale_x
    ty = (pv - cy0 + 0.5) * scale_y
    uv[seen, :, 0] = (tx[faces[seen]] / width).astype(np.float32)
    uv[seen, :, 1] = (ty[faces[seen]] / height).astype(np.float32)

    if n_hidden:
        corner = _hidden_corner_colors(mesh_cam, faces, seen, photo, tx, ty)
        uv[~seen] = _fill_cells(image, corner, _cells_top(photo_h), cell)

    filled = _sampled_filled(
        uv, (width, height), (photo_w, photo_h), _cells_top(photo_h), cell, n_hidden
    )
    area = face_areas(v, faces)
    total_area = float(area.sum()) or 1.0
    photo_texels = photo_w * photo_h
    hidden_texels = n_hidden * cell * cell
    info = {
        "photo_share": round(photo_texels / max(1, photo_texels + hidden_texels), 4),
        "seen_face_share": round(float(seen.mean()) if len(seen) else 0.0, 4),
        "seen_area_share": round(float(area[seen].sum()) / total_area, 4),
        "source_size": [int(w_o), int(h_o)],
        "crop": [int(cx0), int(cy0), int(crop_w), int(crop_h)],
        "photo_scale": round(float(scale), 4),
        "hidden_cell_px": int(cell),
        "sampled_texels_filled": filled,
        "max_size": size,
    }
    return Texture(image, uv, seen, info)


def _crop(v, faces, seen, mask, intrinsics: Intrinsics, working_size, photo_size):
    """Every vertex projected into a photo of ``photo_size`` (pixel centres at integers),
    and the crop the texture takes from it: the silhouette's box (working pixels, a margin
    around it) and every seen corner, as (x0, y0, x1, y1) within the photo."""
    (w_w, h_w), (w_o, h_o) = working_size, photo_size
    K = intrinsics.scaled(w_o, h_o) if (w_o, h_o) != (w_w, h_w) else intrinsics
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(v[:, 2] > 1e-9, v[:, 2], np.nan)
        pu = K.fx * v[:, 0] / z + K.cx
        pv = K.fy * v[:, 1] / z + K.cy
    rows, cols = np.nonzero(mask)
    sx, sy = w_o / w_w, h_o / h_w
    if len(rows):
        x0, x1 = (cols.min() - CROP_MARGIN_PX) * sx, (cols.max() + 1 + CROP_MARGIN_PX) * sx
        y0, y1 = (rows.min() - CROP_MARGIN_PX) * sy, (rows.max() + 1 + CROP_MARGIN_PX) * sy
    else:
        x0, x1, y0, y1 = 0.0, float(w_o), 0.0, float(h_o)
    if seen.any():
        sv = np.unique(faces[seen].ravel())
        x0, x1 = min(x0, pu[sv].min() - 1), max(x1, pu[sv].max() + 2)
        y0, y1 = min(y0, pv[sv].min() - 1), max(y1, pv[sv].max() + 2)
    cx0, cy0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
    cx1, cy1 = min(w_o, int(math.ceil(x1))), min(h_o, int(math.ceil(y1)))
    return pu, pv, (cx0, cy0, cx1, cy1)


def _layout(crop_w: int, crop_h: int, n_hidden: int, size: int) -> tuple[float, int, int, int]:
    """(photo scale, hidden cell size, texture width, height) fitting in ``size`` x ``size``.

    The photo is kept as large as possible (scale <= 1); hidden faces' 2x2-texel cells
    fill rows below it, starting on an even row so that the first mipmap level averages
    each cell on its own. The photo gives up at most half its resolution before cells
    shrink to one texel (a flat colour per face).
    """
    best = min(1.0, size / max(crop_w, crop_h))

    def fit(scale: float, cell: int):
        pw, ph = max(1, round(crop_w * scale)), max(1, round(crop_h * scale))
        if n_hidden == 0:
            return scale, cell, pw, ph
        need = n_hidden * cell * cell + pw * ph
        # even, so that every 2-texel cell starts on an even column, and never narrower
        # than the photo (a wide crop can be wider than the power of two)
        width = min(size - size % 2, max(pw, 2 ** math.ceil(math.log2(math.sqrt(need)))))
        width += width % 2
        if width < pw:
            return None
        height = _cells_top(ph) + math.ceil(n_hidden / (width // cell)) * cell
        return (scale, cell, width, height) if height <= size else None

    for cells, lowest in (((2,), 0.5), ((1,), 0.1)):
        scale = best
        while scale >= lowest * best:
            for cell in cells:
                found = fit(scale, cell)
                if found:
                    return found
            scale *= 0.9
    # Too many faces for this size even at one texel each: grow past it rather than fail.
    pw, ph = max(1, round(crop_w * best * 0.1)), max(1, round(crop_h * best * 0.1))
    width = max(pw, int(math.ceil(math.sqrt(n_hidden))))
    return best * 0.1, 1, width, _cells_top(ph) + math.ceil(n_hidden / width)


def _cells_top(photo_h: int) -> int:
    return photo_h + photo_h % 2


def _photo_region(full, working_rgb, mask, box, out_size) -> np.ndarray:
    """The photo's crop at ``out_size``; pixels outside the silhouette take the nearest object colour.

    A face at the rim samples a texel or two beyond it (bilinear filtering, mipmaps): the
    background's colour must not show there as a halo.
    """
    from PIL import Image
    from scipy import ndimage

    cx0, cy0, cx1, cy1 = box
    w_o, h_o = full.size
    h_w, w_w = working_rgb.shape[:2]
    if (cx1 - cx0, cy1 - cy0) == tuple(out_size):
        crop = np.asarray(full.crop(box))
    else:  # crop and scale in one pass, averaging whole pixel blocks first when much smaller
        crop = np.asarray(
            full.resize(out_size, Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)
        )
    if mask.all() or not mask.any():
        return crop
    # nearest-object fill at working resolution (cheap), then scaled up to the crop
    _, (ri, ci) = ndimage.distance_transform_edt(~mask, return_indices=True)
    filled = working_rgb[ri, ci]
    box_w = (cx0 * w_w / w_o, cy0 * h_w / h_o, cx1 * w_w / w_o, cy1 * h_w / h_o)
    fill = np.asarray(
        Image.fromarray(np.ascontiguousarray(filled)).resize(
            out_size, Image.Resampling.BILINEAR, box=box_w
        )
    )
    inside = np.asarray(
        Image.fromarray(mask.astype(np.uint8) * 255).resize(
            out_size, Image.Resampling.BILINEAR, box=box_w
        )
    )
    return np.where((inside >= 128)[..., None], crop, fill)


def _hidden_corner_colors(mesh_cam, faces, seen, photo, tx, ty) -> np.ndarray:
    """(K, 3, 3) float sRGB 0-255 for the hidden faces' corners: vertex colours, or the
    photo's colour where the vertex also belongs to a seen face (no seam)."""
    colors = np.clip(mesh_cam.colors.astype(np.float64), 0, 1) * 255.0
    on_seen = np.zeros(len(colors), bool)
    on_seen[faces[seen].ravel()] = True
    idx = np.nonzero(on_seen)[0]
    if len(idx):
        colors[idx] = bilinear(photo, tx[idx] - 0.5, ty[idx] - 0.5)
    return colors[faces[~seen]]


def _fill_cells(image: np.ndarray, corner: np.ndarray, top: int, cell: int) -> np.ndarray:
    """Write one cell per hidden face into ``image`` below row ``top``; returns their UVs (K, 3, 2).

    Corners A, B, C sit on the centres of the cell's texels (0, 0), (cell-1, 0) and
    (0, cell-1); every texel (i, j) of the cell holds A + (B - A) i/(cell-1) + (C - A)
    j/(cell-1), so bilinear sampling inside the face reproduces the interpolation: exactly,
    unless the texel past the hypotenuse (extrapolated) had to be clamped to 0-255, which
    only a face across a sharp colour edge needs, and then only near that texel.
    """
    height, width = image.shape[:2]
    k = len(corner)
    per_row = width // cell
    n = np.arange(k)
    ox = (n % per_row) * cell
    oy = top + (n // per_row) * cell
    a, b, c = corner[:, 0], corner[:, 1], corner[:, 2]
    span = max(cell - 1, 1)
    if cell == 1:
        image[oy, ox] = np.clip(np.rint((a + b + c) / 3.0), 0, 255).astype(np.uint8)
    else:
        for j in range(cell):
            for i in range(cell):
                value = a + (b - a) * (i / span) + (c - a) * (j / span)
                image[oy + j, ox + i] = np.clip(np.rint(value), 0, 255).astype(np.uint8)
    lo = 0.5
    hi = cell - 0.5
    uv = np.empty((k, 3, 2), np.float32)
    uv[:, 0, 0], uv[:, 0, 1] = ox + lo, oy + lo
    uv[:, 1, 0], uv[:, 1, 1] = ox + hi, oy + lo
    uv[:, 2, 0], uv[:, 2, 1] = ox + lo, oy + hi
    if cell == 1:
        uv[:, :, 0] = (ox + 0.5)[:, None]
        uv[:, :, 1] = (oy + 0.5)[:, None]
    uv[..., 0] /= width
    uv[..., 1] /= height
    return uv


def _sampled_filled(uv, size, photo_size, top, cell, n_hidden) -> float:
    """Share of the texels that bilinear sampling inside the faces touches which were
    written (photo region or a face's cell): a self-check, 1.0 unless something is wrong.

    Each face is probed at its centre and at points 10% in from its corners."""
    if len(uv) == 0:
        return 1.0
    width, height = size
    written = np.zeros((height, width), bool)
    written[: photo_size[1], : photo_size[0]] = True
    if n_hidden:
        per_row = width // cell
        rows = math.ceil(n_hidden / per_row)
        written[top : top + (rows - 1) * cell] = True
        last = n_hidden - (rows - 1) * per_row
        written[top + (rows - 1) * cell : top + rows * cell, : last * cell] = True
    centre = uv.mean(axis=1, keepdims=True)
    probes = np.concatenate([centre, 0.9 * uv + 0.1 * centre], axis=1).reshape(-1, 2)
    x = probes[:, 0] * width - 0.5
    y = probes[:, 1] * height - 0.5
    ok = np.ones(len(probes), bool)
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    for xx, wx in ((x0, 1 - fx), (x0 + 1, fx)):
        for yy, wy in ((y0, 1 - fy), (y0 + 1, fy)):
            xi = np.clip(xx.astype(np.int64), 0, width - 1)
            yi = np.clip(yy.astype(np.int64), 0, height - 1)
            ok &= written[yi, xi] | (wx * wy < 1e-4)  # a tap without weight reads nothing
    return round(float(ok.mean()), 6)


def sample_texture(texture: Texture, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Bilinear texture colours (float sRGB 0-255) at barycentric points ``bary`` (K, 3) of faces ``face`` (K,)."""
    uv = (texture.uv[face] * bary[:, :, None]).sum(axis=1)
    w, h = texture.size
    return bilinear(texture.image, uv[:, 0] * w - 0.5, uv[:, 1] * h - 0.5)
