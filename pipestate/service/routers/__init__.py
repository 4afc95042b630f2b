"""One router per resource, each under API_PREFIX (health and metrics at the root)."""

API_PREFIX = "/api/v1"
