"""Core utilities every layer uses: user errors, atomic file writes, typed configs."""
