"""Tejas' export module: a pretrained image backbone or sentence encoder as ONNX and its trainable head as
onnxruntime-training artifacts.

Needs the `[ml]` extra (torch, torchvision, onnx, onnxruntime-training; transformers, tokenizers for text).
Public surface:
`export_artifacts(ExportConfig(...))`, `ExportConfig`, `ExportError`, `read_manifest`, `main` (CLI).
"""

import logging

# onnxruntime.training imports torch.utils.cpp_extension, which warns on every CPU-only machine that
# no CUDA runtime is found: noise on stderr that users cannot act on.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

from .errors import ExportError  # noqa: E402
from .export import ExportConfig, export_artifacts, read_manifest  # noqa: E402

__all__ = ["ExportConfig", "ExportError", "export_artifacts", "read_manifest", "main"]


def main(argv=None) -> int:
    from .cli import main as cli_main

    return cli_main(argv)
