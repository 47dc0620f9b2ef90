"""The add-on's Blender-free logic: requests, results, camera maths, messages, the shared protocol.

Nothing in this package imports bpy, and it imports nothing from the rest of the add-on,
so plain pytest tests it without Blender (tests/addon_pure/). ``protocol.py`` is a
byte-identical copy of ``core/protocol.py``.
"""
