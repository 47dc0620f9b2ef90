"""Run inside a real Blender (blender -b --python): import a result file with the add-on, save, reopen, check."""

# blender -b --factory-startup --python-exit-code 1 --python run_in_blender.py -- \
#     --addon-parent REPO --result result.npz --blend out.blend --report report.json [--numpy-dir DIR]

import argparse
import json
import os
import sys

import bpy

NO_NUMPY_EXIT = 3


def parse_args() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="run_in_blender.py")
    parser.add_argument("--addon-parent", required=True, help="folder holding img2mesh_addon/")
    parser.add_argument("--result", required=True, help="the worker's .npz result to import")
    parser.add_argument("--blend", required=True, help="where to save the .blend")
    parser.add_argument("--report", required=True, help="where to write what was found (JSON)")
    parser.add_argument("--numpy-dir", help="a folder with numpy, if Blender's Python lacks it")
    return parser.parse_args(argv)


def scene_facts(name: str) -> dict:
    """What a user would look at, read from the scene as it is now."""
    import numpy as np

    obj = bpy.data.objects[name]
    mesh = obj.data
    attribute = mesh.color_attributes["Color"]
    rgba = np.zeros(len(attribute.data) * 4, dtype=np.float32)
    attribute.data.foreach_get("color_srgb", rgba)
    smooth = np.zeros(len(mesh.polygons), dtype=bool)
    mesh.polygons.foreach_get("use_smooth", smooth)
    bsdf = next(n for n in obj.active_material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    link = bsdf.inputs["Base Color"].links[0]
    cam = bpy.context.scene.camera
    backgrounds = cam.data.background_images if cam else []
    background = None
    if len(backgrounds) and backgrounds[0].image:
        image = backgrounds[0].image
        path = os.path.normpath(bpy.path.abspath(image.filepath))  # saving made it "//..."
        background = [path, list(image.size), backgrounds[0].frame_method]
    return {
        "blender": bpy.app.version_string,
        "vertices": len(mesh.vertices),
        "faces": len(mesh.polygons),
        "attribute": [attribute.name, attribute.data_type, attribute.domain],
        "active_color": mesh.color_attributes.active_color.name,
        "srgb": rgba.reshape(-1, 4)[:, :3].tolist(),
        "smooth": bool(smooth.all()),
        "base_color_from": [link.from_node.type, link.from_node.layer_name],
        "material": obj.active_material.name,
        "camera": cam.name if cam else None,
        "lens": cam.data.lens if cam else None,
        "resolution": [
            bpy.context.scene.render.resolution_x,
            bpy.context.scene.render.resolution_y,
        ],
        "valid": not mesh.validate(),
        "background": background,
    }


def main() -> None:
    args = parse_args()
    try:
        import numpy  # noqa: F401
    except ImportError:
        # Debian's Blender uses the system Python, which may lack numpy (official
        # Blender builds bundle it): borrow the test runner's if given.
        if args.numpy_dir:
            sys.path.append(args.numpy_dir)
        try:
            import numpy  # noqa: F401
        except ImportError as exc:
            print(f"IMG2MESH: Blender's Python has no usable numpy: {exc}")
            sys.exit(NO_NUMPY_EXIT)

    sys.path.insert(0, args.addon_parent)
    from img2mesh_addon import importer

    result = importer.load_result(args.result)
    importer.import_result(bpy.context, result, name="Photo mesh")
    before = scene_facts("Photo mesh")
    bpy.ops.wm.save_as_mainfile(filepath=args.blend)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert "Photo mesh" not in bpy.data.objects
    bpy.ops.wm.open_mainfile(filepath=args.blend)
    after = scene_facts("Photo mesh")
    with open(args.report, "w", encoding="utf-8") as fh:
        json.dump({"imported": before, "reopened": after}, fh)
    print("IMG2MESH: imported, saved and reopened", args.blend)


main()
