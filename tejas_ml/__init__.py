"""The torch/ONNX layer: everything that imports torch, onnxruntime, numpy or Pillow, used by the `tejas`
command (export, train, predict) and by the server, never the reverse.

- `export`: the training artifacts the app trains on (frozen backbones, ONNX training graphs, the text encoder).
- `training`: the PyTorch trainer behind server jobs, `tejas train` and bench/server_train.py.
- `prediction`: a Tejas classifier ONNX run with onnxruntime, and batch prediction over a zip or folder.
- `imaging`: decoding an uploaded image within the core's image rule (Pillow); `texts`: what a text sample's
  bytes must be.

Importing this package (or `imaging`, `texts`) imports no torch; the subpackages import it when used.
"""
