"""Render the bundled example photo (examples/toy.*) with Blender's Cycles, with exact depth and mask."""

# Run with the Blender-as-a-module environment:
#
#     .venv-blender/bin/python scripts/render_example.py [--out examples]
#
# The scene is a toy bear built from spheres and a cone, lit softly, on a plain light
# grey background. Two renders: a well sampled colour image, and a one-sample pass
# through the exact pixel centres that gives the depth (Cycles' Z pass) and the
# silhouette. The depth is checked against ray casts and the known sphere geometry
# before anything is written.

from __future__ import annotations

import argparse
import json
import math
import re
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

WIDTH, HEIGHT = 640, 480
LENS_MM = 50.0  # an integer, so EXIF's whole-millimetre FocalLengthIn35mmFilm is exact
SENSOR_MM = 36.0  # full-frame width: the 35 mm-equivalent focal length equals LENS_MM
CAMERA_LOCATION = (0.0, -0.9, 0.175)  # metres, Blender world (Z up); looks along +Y
BACKGROUND_SRGB = 0.94  # light grey, as the camera sees it: easy to key out
SAMPLES = 96
SEED = 7
JPEG_QUALITY = 92
DEPTH_UNIT_M = 0.001  # the depth PNG stores millimetres

# The toy in its own frame (metres, Z up, front towards -Y), turned by TOY_YAW_DEG
# about Z so that the picture is not mirror-symmetric. Colours are linear RGB.
TOY_YAW_DEG = -20.0
ORANGE, YELLOW, MAGENTA = (0.90, 0.20, 0.02), (1.0, 0.72, 0.04), (0.80, 0.06, 0.45)
BLUE, GREEN, RED, BLACK = (0.03, 0.25, 0.90), (0.08, 0.62, 0.12), (0.85, 0.03, 0.03), (0.015,) * 3
TEAL = (0.0, 0.55, 0.65)
SPHERES = [
    # name, centre, radius, colour
    ("body", (0.0, 0.0, 0.100), 0.085, ORANGE),
    ("head", (0.0, -0.005, 0.228), 0.065, YELLOW),
    ("ear_left", (-0.050, 0.005, 0.283), 0.024, MAGENTA),
    ("ear_right", (0.050, 0.005, 0.283), 0.024, MAGENTA),
    ("arm_left", (-0.088, -0.018, 0.125), 0.030, BLUE),
    ("arm_right", (0.088, -0.018, 0.125), 0.030, BLUE),
    ("foot_left", (-0.045, -0.035, 0.035), 0.035, GREEN),
    ("foot_right", (0.045, -0.035, 0.035), 0.035, GREEN),
    ("nose", (0.0, -0.066, 0.218), 0.015, RED),
    ("eye_left", (-0.024, -0.056, 0.245), 0.009, BLACK),
    ("eye_right", (0.024, -0.056, 0.245), 0.009, BLACK),
    ("pompom", (0.018, 0.0, 0.372), 0.013, MAGENTA),
]
HAT = {"base": (0.006, -0.002, 0.283), "tip": (0.018, 0.0, 0.365), "radius": 0.032, "color": TEAL}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "examples"
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    scene = build_scene()
    with tempfile.TemporaryDirectory(prefix="img2mesh-render-") as tmp:
        tmp = Path(tmp)
        jpeg = render_color(scene, tmp / "color.jpg")
        depth = render_depth(scene, tmp / "depth.exr")
    colour_s = time.perf_counter() - start

    intr = intrinsics()
    mask = depth > 0
    check_depth(scene, depth, intr)

    jpeg = add_exif(jpeg, LENS_MM, LENS_MM * 36.0 / SENSOR_MM)
    (out / "toy.jpg").write_bytes(jpeg)
    depth_mm = np.round(depth / DEPTH_UNIT_M).astype(np.uint16)
    (out / "toy_depth.png").write_bytes(png_bytes(depth_mm))
    (out / "toy_mask.png").write_bytes(png_bytes(mask.astype(np.uint8) * 255))
    info = {
        "image": "toy.jpg",
        "depth": "toy_depth.png",
        "mask": "toy_mask.png",
        "intrinsics": intr,
        "fov_deg": math.degrees(2 * math.atan(SENSOR_MM / (2 * LENS_MM))),
        "lens_mm": LENS_MM,
        "sensor_width_mm": SENSOR_MM,
        "focal_length_35mm": LENS_MM * 36.0 / SENSOR_MM,
        "depth_units": "millimetres",
        "depth_scale": DEPTH_UNIT_M,
        "depth_kind": "z along the optical axis (not distance along the ray); 0 = background",
        "camera_frame": "OpenCV: x right, y down, z forward; pixel centres at integer coordinates",
        # Every sphere of the toy (the hat is a cone), for checking back-projections.
        "spheres": [
            {"name": name, "centre": [round(x, 6) for x in to_camera(world)], "radius": radius}
            for name, world, radius in placed_spheres()
        ],
        "made_by": "scripts/render_example.py",
        "renderer": f"Blender {bpy.app.version_string} Cycles, CPU, {SAMPLES} samples, seed {SEED}",
        "background_srgb": [round(BACKGROUND_SRGB * 255)] * 3,
    }
    (out / "toy.json").write_text(compact_json(info) + "\n", encoding="utf-8")
    for name in ("toy.jpg", "toy_depth.png", "toy_mask.png", "toy.json"):
        print(f"wrote {out / name} ({(out / name).stat().st_size / 1024:.0f} KiB)")
    print(f"rendered in {colour_s:.1f} s; {mask.sum()} object pixels")
    return 0


# --------------------------------------------------------------------------- scene


def yaw_matrix() -> np.ndarray:
    a = math.radians(TOY_YAW_DEG)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


def placed_spheres() -> list[tuple[str, np.ndarray, float]]:
    """(name, centre in the Blender world, radius) of every sphere after the toy's turn."""
    r = yaw_matrix()
    return [(name, r @ np.array(c), radius) for name, c, radius, _ in SPHERES]


def to_camera(world: np.ndarray) -> tuple[float, float, float]:
    """Blender world point -> OpenCV camera frame of the level camera looking along +Y."""
    d = np.asarray(world, dtype=np.float64) - np.array(CAMERA_LOCATION)
    return (float(d[0]), float(-d[2]), float(d[1]))


def intrinsics() -> dict:
    f = LENS_MM / SENSOR_MM * WIDTH  # sensor fit is horizontal: the width spans the sensor
    return {
        "fx": f,
        "fy": f,
        "cx": (WIDTH - 1) / 2.0,
        "cy": (HEIGHT - 1) / 2.0,
        "width": WIDTH,
        "height": HEIGHT,
    }


def material(name: str, color: tuple[float, float, float]) -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    bsdf.inputs["Roughness"].default_value = 0.45
    # Dim highlights: near-white spots would be keyed out as background.
    bsdf.inputs["Specular IOR Level"].default_value = 0.25
    return mat


def build_scene() -> bpy.types.Scene:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene

    for name, centre, radius in placed_spheres():
        color = next(c for n, _, _, c in SPHERES if n == name)
        bpy.ops.mesh.primitive_uv_sphere_add(
            segments=96, ring_count=48, radius=radius, location=tuple(centre)
        )
        obj = bpy.context.object
        obj.name = name
        obj.data.materials.append(material(name, color))
        obj.data.shade_smooth()

    r = yaw_matrix()
    base, tip = r @ np.array(HAT["base"]), r @ np.array(HAT["tip"])
    axis = Vector(tuple(tip - base))
    bpy.ops.mesh.primitive_cone_add(
        vertices=96,
        radius1=HAT["radius"],
        radius2=0.0,
        depth=axis.length,
        location=tuple((base + tip) / 2),
        rotation=axis.to_track_quat("Z", "Y").to_euler(),
    )
    hat = bpy.context.object
    hat.name = "hat"
    hat.data.materials.append(material("hat", HAT["color"]))

    cam_data = bpy.data.cameras.new("camera")
    cam_data.lens = LENS_MM
    cam_data.sensor_width = SENSOR_MM
    cam_data.sensor_fit = "HORIZONTAL"
    cam = bpy.data.objects.new("camera", cam_data)
    cam.location = CAMERA_LOCATION
    cam.rotation_euler = (math.pi / 2, 0.0, 0.0)  # the project's convention: along +Y, Z up
    scene.collection.objects.link(cam)
    scene.camera = cam

    # Soft key light from the upper left in front, a weaker fill from the right.
    for name, loc, power, size in (
        ("key", (-0.7, -0.8, 0.9), 30.0, 0.6),
        ("fill", (0.8, -0.6, 0.3), 6.0, 0.8),
    ):
        light_data = bpy.data.lights.new(name, "AREA")
        light_data.energy = power
        light_data.size = size
        light = bpy.data.objects.new(name, light_data)
        light.location = loc
        direction = Vector((0.0, 0.0, 0.18)) - Vector(loc)
        light.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
        scene.collection.objects.link(light)

    # The world lights the toy with soft grey, but the camera sees the flat background
    # colour: a Light Path switch, so the background pixels are exactly BACKGROUND_SRGB.
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    nodes, links = world.node_tree.nodes, world.node_tree.links
    nodes.clear()
    path = nodes.new("ShaderNodeLightPath")
    ambient = nodes.new("ShaderNodeBackground")
    ambient.inputs["Color"].default_value = (0.30, 0.32, 0.35, 1.0)
    backdrop = nodes.new("ShaderNodeBackground")
    backdrop.inputs["Color"].default_value = (*[srgb_to_linear(BACKGROUND_SRGB)] * 3, 1.0)
    mix = nodes.new("ShaderNodeMixShader")
    output = nodes.new("ShaderNodeOutputWorld")
    links.new(path.outputs["Is Camera Ray"], mix.inputs["Fac"])
    links.new(ambient.outputs["Background"], mix.inputs[1])
    links.new(backdrop.outputs["Background"], mix.inputs[2])
    links.new(mix.outputs["Shader"], output.inputs["Surface"])
    scene.world = world

    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x, render.resolution_y, render.resolution_percentage = WIDTH, HEIGHT, 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.dither_intensity = 0.0  # no noise added to the 8-bit output
    render.use_compositing = False
    scene.cycles.device = "CPU"
    scene.cycles.seed = SEED
    scene.cycles.use_animated_seed = False
    scene.view_settings.view_transform = "Standard"  # keep saturated colours as they are
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    return scene


# --------------------------------------------------------------------------- renders


def render_color(scene: bpy.types.Scene, path: Path) -> bytes:
    cycles = scene.cycles
    cycles.samples = SAMPLES
    cycles.use_adaptive_sampling = True
    # No denoiser: OpenImageDenoise is not bit-exact from run to run, plain path tracing is.
    cycles.use_denoising = False
    cycles.max_bounces = 4
    scene.render.film_transparent = False
    settings = scene.render.image_settings
    settings.file_format = "JPEG"
    settings.color_mode = "RGB"
    settings.quality = JPEG_QUALITY
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return path.read_bytes()


def render_depth(scene: bpy.types.Scene, path: Path) -> np.ndarray:
    """Depth in metres (Cycles' Z pass) at the exact pixel centres, 0 where no object is.

    One sample per pixel, and a pixel filter so narrow that the sample sits on the
    pixel centre: the Z pass is not averaged over samples, so a wide filter would
    give the depth of a random point in the pixel.
    """
    cycles = scene.cycles
    cycles.samples = 1
    cycles.use_adaptive_sampling = False
    cycles.use_denoising = False
    cycles.pixel_filter_type = "BOX"
    cycles.filter_width = 0.01
    scene.view_layers[0].use_pass_z = True
    scene.render.use_compositing = True
    scene.use_nodes = True
    tree = scene.node_tree
    tree.nodes.clear()
    layers = tree.nodes.new("CompositorNodeRLayers")
    composite = tree.nodes.new("CompositorNodeComposite")
    tree.links.new(layers.outputs["Depth"], composite.inputs["Image"])
    settings = scene.render.image_settings
    settings.file_format = "OPEN_EXR"
    settings.color_mode = "RGB"
    settings.color_depth = "32"
    settings.exr_codec = "ZIP"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)

    image = bpy.data.images.load(str(path))
    pixels = np.empty(WIDTH * HEIGHT * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    # Blender's rows run bottom-up; images run top-down.
    z = pixels.reshape(HEIGHT, WIDTH, 4)[::-1, :, 0].astype(np.float64)
    # Rays that hit nothing get Cycles' "infinitely far" (1e10).
    return np.where(z < 1e3, z, 0.0)


# --------------------------------------------------------------------------- checks


def check_depth(scene: bpy.types.Scene, depth: np.ndarray, intr: dict) -> None:
    """Fail loudly unless the depth is z along the optical axis at the pixel centres.

    Casts rays through random object pixels: the hit's z must match the depth, and
    the back-projected point must lie on the sphere the ray hit.
    """
    depsgraph = bpy.context.evaluated_depsgraph_get()
    origin = Vector(CAMERA_LOCATION)
    spheres = {name: (np.array(to_camera(c)), r) for name, c, r in placed_spheres()}
    rng = np.random.default_rng(SEED)
    ys, xs = np.nonzero(depth > 0)
    pick = rng.choice(len(xs), size=1000, replace=False)
    worst_z = worst_ray = worst_sphere = 0.0
    on_spheres = 0
    for u, v in zip(xs[pick], ys[pick], strict=True):
        d_cam = np.array([(u - intr["cx"]) / intr["fx"], (v - intr["cy"]) / intr["fy"], 1.0])
        direction = Vector((d_cam[0], d_cam[2], -d_cam[1]))  # camera frame -> Blender world
        hit, location, _, _, obj, _ = scene.ray_cast(depsgraph, origin, direction.normalized())
        if not hit:
            raise SystemExit(f"pixel ({u}, {v}) has depth {depth[v, u]:.4f} but its ray misses")
        worst_z = max(worst_z, abs(depth[v, u] - (location - origin).y))  # camera looks along +Y
        worst_ray = max(worst_ray, abs(depth[v, u] - (location - origin).length))
        if obj.name in spheres:
            centre, radius = spheres[obj.name]
            point = d_cam * depth[v, u]
            worst_sphere = max(worst_sphere, abs(np.linalg.norm(point - centre) - radius))
            on_spheres += 1
    print(
        f"depth vs ray cast at 1000 pixels: |z error| <= {worst_z * 1000:.3f} mm, "
        f"|ray-distance error| <= {worst_ray * 1000:.3f} mm; back-projected points are "
        f"within {worst_sphere * 1000:.3f} mm of their sphere ({on_spheres} pixels)"
    )
    if worst_z > 0.0005 or worst_sphere > 0.001:
        raise SystemExit("the depth is not z along the optical axis at the pixel centres")


# --------------------------------------------------------------------------- files


def compact_json(data: dict) -> str:
    """Indented JSON with each sphere and each number list on one line, to stay readable."""
    text = json.dumps(data, indent=2)

    def one_line(m: re.Match) -> str:
        return m.group(1) + " ".join(m.group(2).split()) + m.group(3)

    text = re.sub(r'(\{)\s+("name"[^{}]*?)\s+(\})', one_line, text)
    return re.sub(r"(\[)\s+([-\d.e,\s]+?)\s+(\])", one_line, text)


def srgb_to_linear(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def add_exif(jpeg: bytes, focal_mm: float, focal_35mm: float) -> bytes:
    """Insert an Exif APP1 segment with FocalLength and FocalLengthIn35mmFilm.

    Written by hand because the bpy environment has no Pillow and Blender writes no EXIF.
    """
    if jpeg[:2] != b"\xff\xd8":
        raise SystemExit("Blender did not write a JPEG")
    le = "<"

    def entry(tag: int, kind: int, count: int, value: bytes) -> bytes:
        return struct.pack(le + "HHI", tag, kind, count) + value.ljust(4, b"\0")

    software = b"img2mesh scripts/render_example.py\0"
    # TIFF header (8) + IFD0 (2 + 2*12 + 4) + Exif IFD (2 + 2*12 + 4), then data.
    ifd0_at, exif_at = 8, 8 + 2 + 2 * 12 + 4
    data_at = exif_at + 2 + 2 * 12 + 4
    software_at, focal_at = data_at, data_at + len(software)
    tiff = b"II*\0" + struct.pack(le + "I", ifd0_at)
    tiff += struct.pack(le + "H", 2)
    tiff += entry(0x0131, 2, len(software), struct.pack(le + "I", software_at))  # Software
    tiff += entry(0x8769, 4, 1, struct.pack(le + "I", exif_at))  # Exif IFD pointer
    tiff += struct.pack(le + "I", 0)
    tiff += struct.pack(le + "H", 2)
    tiff += entry(0x920A, 5, 1, struct.pack(le + "I", focal_at))  # FocalLength, RATIONAL
    tiff += entry(0xA405, 3, 1, struct.pack(le + "H", round(focal_35mm)))  # 35 mm equivalent
    tiff += struct.pack(le + "I", 0)
    tiff += software + struct.pack(le + "II", round(focal_mm * 100), 100)
    payload = b"Exif\0\0" + tiff
    exif = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload

    # Rebuild the header: keep JFIF and the coding segments, drop Blender's comments
    # (render time, date: they would make every run differ) and its private APP1.
    out, pos = [jpeg[:2]], 2
    while True:
        marker = jpeg[pos + 1]
        length = struct.unpack(">H", jpeg[pos + 2 : pos + 4])[0]
        segment = jpeg[pos : pos + 2 + length]
        if marker == 0xDA:  # start of scan: the rest is image data
            out.append(jpeg[pos:])
            break
        if marker == 0xE0:
            out += [segment, exif]  # Exif goes right after JFIF
            exif = b""
        elif marker not in (0xE1, 0xFE):
            out.append(exif + segment)
            exif = b""
        pos += 2 + length
    return b"".join(out)


def png_bytes(image: np.ndarray) -> bytes:
    """A greyscale PNG (8 or 16 bit) from a 2-D uint8 or uint16 array, each row's filter chosen."""
    height, width = image.shape
    bit_depth = 16 if image.dtype == np.uint16 else 8
    raw = image.astype(">u2" if bit_depth == 16 else "u1").view(np.uint8).reshape(height, -1)
    bpp = bit_depth // 8
    a = np.zeros_like(raw, dtype=np.int16)  # left
    a[:, bpp:] = raw[:, :-bpp]
    b = np.zeros_like(a)  # up
    b[1:] = raw[:-1]
    c = np.zeros_like(a)  # up-left
    c[1:, bpp:] = raw[:-1, :-bpp]
    x = raw.astype(np.int16)
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    candidates = np.stack([x, x - a, x - b, x - (a + b) // 2, x - paeth]).astype(np.uint8)
    # The usual heuristic: per row, the filter whose bytes (as signed) sum smallest.
    cost = np.abs(candidates.astype(np.int8).astype(np.int32)).sum(axis=2)
    best = cost.argmin(axis=0)
    rows = candidates[best, np.arange(height)]
    body = np.concatenate([best.astype(np.uint8)[:, None], rows], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(body, 9))
        + chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    sys.exit(main())
