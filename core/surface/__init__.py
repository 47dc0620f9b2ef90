"""Stages 4 and 5: the point cloud, and the surface built from it (Poisson or the depth grid, closed or open) with its colours and texture."""
