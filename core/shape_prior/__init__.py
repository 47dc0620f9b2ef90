"""What the hidden side looks like: priors fitted to the visible surface (a surface of revolution), or refused honestly."""
