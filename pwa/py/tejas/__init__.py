"""Tejas' stdlib-only core: runs unchanged in CPython and in the browser under Pyodide.

Public surface so far: `artifacts.read_manifest`, `artifacts.verify_artifacts`, `artifacts.ArtifactError`.
"""

__version__ = "0.1.0"
