"""prewheel: pre-build a hash-pinned wheelhouse for each deploy target."""

from __future__ import annotations

__version__ = "0.1.0"
