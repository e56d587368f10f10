"""The request log: rows recorded on the hot path, written in the background."""
