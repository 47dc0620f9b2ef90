"""Pure geometry on numpy arrays: the camera and the output frame, meshes, point clouds, topology and image sampling."""
