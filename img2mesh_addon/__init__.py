"""Img2Mesh for Blender: one photo to a coloured mesh, reconstructed by a worker process."""

import atexit

# bpy and the modules that use it are imported in register(), not here, so that the
# Blender-free logic (the logic/ package) imports without Blender: tests/addon_pure/.

bl_info = {
    "name": "Img2Mesh",
    "author": "img2mesh contributors",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "3D Viewport > Sidebar (N) > Img2Mesh",
    "description": "Reconstruct a coloured 3D mesh from one photo",
    "category": "Import-Export",
}


def _modules() -> tuple:
    """Registered in this order, unregistered in reverse."""
    from . import operators, panel, preferences, properties

    return (preferences, properties, operators, panel)


def register() -> None:
    import bpy

    from . import worker_client

    for module in _modules():
        for cls in module.classes:
            bpy.utils.register_class(cls)
        if hasattr(module, "register"):
            module.register()
    atexit.register(worker_client.shutdown)


def unregister() -> None:
    import bpy

    from . import worker_client

    atexit.unregister(worker_client.shutdown)
    worker_client.shutdown()
    for module in reversed(_modules()):
        if hasattr(module, "unregister"):
            module.unregister()
        for cls in reversed(module.classes):
            bpy.utils.unregister_class(cls)
