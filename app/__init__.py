"""sloguard: SLOs, incidents and guarded model rollback for ML services in production."""

from __future__ import annotations

__version__ = "0.1.0"
