"""HTTP service for a production line (``mvr3d serve``); needs the 'serve' extra."""

from mvr3d.service.app import BatchScorer, create_app, require_service

__all__ = ["BatchScorer", "create_app", "require_service"]
