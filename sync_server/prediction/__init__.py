"""Prediction with trained models: the ONNX classifier (`model`), models a user owns on the server
(`models`), batch jobs over zips (`batch`) and the Redis Streams pipeline (`streams`, `worker`)."""
