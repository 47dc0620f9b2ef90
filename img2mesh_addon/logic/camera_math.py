"""Blender camera values for the photo's pinhole camera, and clipping that shows the whole mesh."""

from __future__ import annotations

import numpy as np

#: The camera's sensor is 36 mm across the photo's longer side, so the lens reads as a
#: full-frame (35 mm equivalent) focal length.
SENSOR_MM = 36.0


def camera_settings(intr: dict) -> dict:
    """Blender camera and render values for pinhole intrinsics (see create_camera).

    Blender's view plane spans ``width`` horizontally and ``ycor * height`` vertically
    with ``ycor = pixel_aspect_y / pixel_aspect_x``; the sensor fit side spans the sensor,
    and lens shift is a fraction of that side. Square view units need ycor = fx / fy.
    """
    fx, fy, cx, cy = intr["fx"], intr["fy"], intr["cx"], intr["cy"]
    w, h = intr["width"], intr["height"]
    ycor = fx / fy
    aspect_x, aspect_y = (1.0, ycor) if ycor >= 1.0 else (1.0 / ycor, 1.0)
    frame_w, frame_h = w, ycor * h  # the view plane, in horizontal pixels
    if frame_w >= frame_h:
        fit, side = "HORIZONTAL", frame_w
        sensor_w, sensor_h = SENSOR_MM, SENSOR_MM * frame_h / frame_w
    else:
        fit, side = "VERTICAL", frame_h
        sensor_w, sensor_h = SENSOR_MM * frame_w / frame_h, SENSOR_MM
    return {
        "sensor_fit": fit,
        "sensor_width": sensor_w,
        "sensor_height": sensor_h,
        "lens": fx * SENSOR_MM / side,
        # OpenCV puts pixel centres at integers, so the image centre is ((w-1)/2, (h-1)/2).
        "shift_x": ((w - 1) / 2.0 - cx) / side,
        "shift_y": ycor * (cy - (h - 1) / 2.0) / side,
        "resolution": (w, h),
        "pixel_aspect": (aspect_x, aspect_y),
    }


def clip_range(verts: np.ndarray, location) -> tuple[float, float]:
    """Blender's default clipping (0.1 to 100), widened so the whole mesh is drawn."""
    dist = np.linalg.norm(verts.astype(np.float64) - np.asarray(location), axis=1)
    near, far = float(dist.min()), float(dist.max())
    start = min(0.1, 0.5 * near) if near > 0 else 0.1
    return max(start, 1e-6), max(100.0, 2.0 * far)
