"""Where img2mesh keeps things on disk: the data folder, its fingerprinted files, the mask and depth cache."""
