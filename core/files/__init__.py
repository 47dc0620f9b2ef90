"""Files in and out: photos read upright, meshes written and read (PLY, OBJ, GLB), previews; every write atomic."""
