"""Prediction with a trained classifier: the ONNX model run with onnxruntime (`model`), every image of a zip
or folder in batches (`batch`), and `tejas predict` (`cli`). The server's batch jobs and streams use these."""
