"""rollout: moves legacy per-user projects into Organizations, progressively, in waves."""

__version__ = "0.1.0"
