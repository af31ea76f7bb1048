"""The PyTorch trainer: one module behind server jobs, `tejas train` and bench/server_train.py.

- run.py          one run from examples to result files, for images (train_and_write) and texts
                  (train_text_and_write): what server jobs, `tejas train` and the benchmarks call
- data.py         examples from an ImageFolder zip/folder (the core's hostile-input rules) or a synced
                  project, the app's split, torch datasets with the app's preprocessing
- trainer.py      the network per mode (the catalog's head | last_block | full) and the loop (AMP +
                  channels-last on CUDA, early stopping, events)
- network.py      the network's frozen and trainable parts, the optimiser's parameter groups, the device
- checkpoints.py  history, the epochs' shuffling and checkpoints that resume mid-epoch
- results.py      what a finished run leaves: ONNX + .pt (written by the core, checked against PyTorch),
                  metrics, the app's model, and for `full` a new artifact set made by the exporter
- text.py, text_data.py, text_results.py  the same for texts: all-MiniLM-L6-v2 fine-tuned whole
- cli.py          `tejas train`
"""
