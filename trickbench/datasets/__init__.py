"""The generated datasets, in the real ImageNet, Pascal VOC and ADE20K on-disk layouts.

- :mod:`~trickbench.datasets.base`: the shared layer: the error, parameter checks,
  atomic and idempotent dataset folders with their marker file, JPEG writing;
- :mod:`~trickbench.datasets.voc`: the VOC layout (XML annotations, image lists);
- :mod:`~trickbench.datasets.shapes`: drawn shapes, learnable in a minute on a CPU;
- :mod:`~trickbench.datasets.fashion`: Fashion-MNIST photos and canvases;
- :mod:`~trickbench.datasets.fashion_mnist`: Fashion-MNIST's files: fetch, check, read;
- :mod:`~trickbench.datasets.cli`: ``python -m trickbench.datasets {shapes,fashion,fetch}``.
"""
