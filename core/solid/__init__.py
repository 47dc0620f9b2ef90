"""Valid volumes: finding the face pairs that cross, exact triangle tests, repairing crossings, and the validity report."""
