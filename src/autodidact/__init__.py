"""autodidact: teach agents to act from unlabeled interaction data."""

__version__ = "0.1.0"
