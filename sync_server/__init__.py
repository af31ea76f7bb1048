"""Tejas' optional server. For now it serves the PWA and the artifacts with cross-origin isolation."""
