"""The original approach img2mesh comes from, re-implemented plainly as it was described.

GLPN-NYU depth on the image resized to a height of at most 480 (multiples of 32), a
16-pixel border cropped, depth scaled to 8 bits, an Open3D RGB-D image turned into a
point cloud with fx = fy = 500 and the principal point at the centre, statistical
outlier removal (20 neighbours, std ratio 20), normals, Poisson at depth 10 on one
thread without trimming, rotated by pi about x, written as PLY.

Each step is a function so the benchmark can time it, and so the geometry benchmark
can feed it exact depth (:func:`mesh_from_depth`) the way it uses depth.
"""

from __future__ import annotations

import numpy as np

PAD = 16
FOCAL = 500.0
POISSON_DEPTH = 10


def load_model(model: str):
    """GLPN's processor and network, as ``from_pretrained`` gives them."""
    from transformers import GLPNForDepthEstimation, GLPNImageProcessor

    processor = GLPNImageProcessor.from_pretrained(model)
    network = GLPNForDepthEstimation.from_pretrained(model)
    return processor, network


def resize(image):
    """Height at most 480 and a multiple of 32; width to the nearest multiple of 32."""
    new_height = 480 if image.height > 480 else image.height
    new_height -= new_height % 32
    new_width = int(new_height * image.width / image.height)
    diff = new_width % 32
    new_width = new_width - diff if diff < 16 else new_width + 32 - diff
    return image.resize((new_width, new_height))


def forward(processor, network, image):
    """The predicted depth tensor, with plain PyTorch under ``no_grad``."""
    import torch

    inputs = processor(images=image, return_tensors="pt")
    with torch.no_grad():
        outputs = network(**inputs)
    return outputs.predicted_depth


def crop_and_quantise(image, predicted_depth) -> tuple[np.ndarray, np.ndarray]:
    """The 16-pixel border cropped from photo and depth; depth scaled to 0-255 as uint8."""
    output = predicted_depth.squeeze().cpu().numpy() * 1000.0
    output = output[PAD:-PAD, PAD:-PAD]
    image = image.crop((PAD, PAD, image.width - PAD, image.height - PAD))
    depth = (output * 255 / np.max(output)).astype("uint8")
    return np.array(image), depth


def point_cloud(rgb: np.ndarray, depth_u8: np.ndarray):
    """Open3D RGB-D image to point cloud, fx = fy = 500, principal point at the centre."""
    import open3d as o3d

    height, width = depth_u8.shape
    depth_o3d = o3d.geometry.Image(np.ascontiguousarray(depth_u8))
    image_o3d = o3d.geometry.Image(np.ascontiguousarray(rgb))
    rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
        image_o3d, depth_o3d, convert_rgb_to_intensity=False
    )
    intrinsic = o3d.camera.PinholeCameraIntrinsic()
    intrinsic.set_intrinsics(width, height, FOCAL, FOCAL, width / 2, height / 2)
    return o3d.geometry.PointCloud.create_from_rgbd_image(rgbd, intrinsic)


def clean(pcd):
    """Statistical outlier removal: 20 neighbours, std ratio 20."""
    _, index = pcd.remove_statistical_outlier(nb_neighbors=20, std_ratio=20.0)
    return pcd.select_by_index(index)


def normals(pcd):
    """Normals from 30 nearest neighbours (Open3D's default), all turned towards +z."""
    pcd.estimate_normals()
    pcd.orient_normals_to_align_with_direction()
    return pcd


def poisson(pcd, depth: int = POISSON_DEPTH):
    """Screened Poisson at ``depth`` on one thread, nothing trimmed; rotated by pi about x."""
    import open3d as o3d

    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(
            pcd, depth=depth, n_threads=1
        )[0]
    rotation = mesh.get_rotation_matrix_from_xyz((np.pi, 0, 0))
    mesh.rotate(rotation, center=(0, 0, 0))
    return mesh


def write(mesh, path) -> None:
    import open3d as o3d

    o3d.io.write_triangle_mesh(str(path), mesh)


def run(image_path, out_path, model: str) -> None:
    """The whole original script, one photo in, one PLY out."""
    from PIL import Image

    processor, network = load_model(model)
    image = resize(Image.open(image_path))
    predicted = forward(processor, network, image)
    rgb, depth = crop_and_quantise(image, predicted)
    pcd = normals(clean(point_cloud(rgb, depth)))
    write(poisson(pcd), out_path)


# --- geometry: the original's treatment of a known depth map ---------------------------------


def mesh_from_depth(rgb: np.ndarray, depth_m: np.ndarray, camera):
    """The original pipeline from depth onwards, fed exact metric depth as it fed GLPN's.

    ``depth_m``: (H, W) metres, 0 where nothing is seen. Returns the Open3D mesh (in the
    original's rotated output frame) and what is needed to bring it back to the
    scene's camera frame: see :func:`to_camera_frame`.
    """
    depth = depth_m[PAD:-PAD, PAD:-PAD]
    rgb = rgb[PAD:-PAD, PAD:-PAD]
    top = float(np.max(depth))
    depth_u8 = (depth * 255 / top).astype("uint8")
    pcd = point_cloud(rgb, depth_u8)
    # Open3D turns 8-bit depth into [0, 1] and divides by its depth scale (1000): the
    # farthest pixel (255) lands at 1 mm, and the original's z is proportional to depth.
    z_far = float(np.asarray(pcd.points)[:, 2].max())
    pcd = normals(clean(pcd))
    mesh = poisson(pcd)
    frame = {"z_scale": top / z_far, "width": depth_u8.shape[1], "height": depth_u8.shape[0]}
    return mesh, pcd, frame


def to_camera_frame(
    vertices: np.ndarray, frame: dict, intrinsics, *, true_camera: bool = False
) -> np.ndarray:
    """The original's vertices in the scene's camera frame, for scoring.

    Always undone: the rotation by pi about x, and the 8-bit depth's lost unit (the
    whole mesh is scaled by the scene's largest depth over the original's, about the
    camera). That is the shape the original made, seen through its own fx = fy = 500
    camera. With ``true_camera`` its camera is undone as well: each vertex is
    projected through fx = fy = 500 (cropped image coordinates shifted back by the
    16 pixels) and back-projected through the scene's true camera at its depth, so
    only quantisation, outlier removal, normals and Poisson remain as the original
    made them: the most generous comparison it can get.
    """
    v = np.asarray(vertices, dtype=np.float64).copy()
    v[:, 1:] *= -1.0  # the rotation by pi about x is its own inverse
    v *= frame["z_scale"]
    if not true_camera:
        return v
    z = v[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = FOCAL * v[:, 0] / z + frame["width"] / 2 + PAD
        w = FOCAL * v[:, 1] / z + frame["height"] / 2 + PAD
    out = np.empty_like(v)
    out[:, 0] = (u - intrinsics.cx) * z / intrinsics.fx
    out[:, 1] = (w - intrinsics.cy) * z / intrinsics.fy
    out[:, 2] = z
    return out
