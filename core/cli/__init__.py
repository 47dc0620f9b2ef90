"""The ``img2mesh`` command: its arguments, its progress bars, and how it turns them into runs."""
