"""The PyTorch trainer: one module behind server jobs, `tejas train` and bench/server_train.py.

- data.py     examples from an ImageFolder zip/folder (the core's hostile-input rules) or a synced
              project, the app's split, torch datasets with the app's preprocessing
- trainer.py  the network per mode (head | last_block | full), the loop (AMP + channels-last on CUDA,
              early stopping, checkpoints that resume mid-epoch), events
- results.py  what a finished run leaves: ONNX + .pt (written by the core, checked against PyTorch),
              metrics, the app's model, and for `full` a new artifact set made by the exporter
"""
