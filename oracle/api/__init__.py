"""The node's REST API."""
