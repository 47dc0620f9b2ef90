"""Oracle scenes with known answers (ray-cast meshes) and the scores against them: for tests and benchmarks, never a user's run."""
