"""Tejas' export module: a pretrained backbone as ONNX and its trainable head as onnxruntime-training artifacts.

Needs the `[export]` extra (torch, torchvision, onnx, onnxruntime-training). Public surface:
`export_artifacts(ExportConfig(...))`, `ExportConfig`, `ExportError`, `read_manifest`, `main` (CLI).
"""

from .errors import ExportError
from .export import ExportConfig, export_artifacts, read_manifest

__all__ = ["ExportConfig", "ExportError", "export_artifacts", "read_manifest", "main"]


def main(argv=None) -> int:
    from .cli import main as cli_main

    return cli_main(argv)
