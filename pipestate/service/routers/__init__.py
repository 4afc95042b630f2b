"""One router per resource, mounted under /api/v1 by create_app (health at the root)."""
