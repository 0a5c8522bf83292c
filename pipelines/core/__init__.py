"""Shared machinery used by every source; each concern lives in one module."""
