"""The vocabularies of the options, as ``Literal`` types shared by the library and the CLI.

Typer turns a ``Literal`` into a choice, so ``--help`` lists the values and a typo is refused
before any work starts; library functions check their arguments against the same tuples.
Importing this module costs nothing (no torch), so every command's ``--help`` can use it.

Example:
    >>> MODALITIES, OPTIMIZERS
    (('image', 'text'), ('lars', 'sgd', 'adamw'))
"""

from __future__ import annotations

from typing import Literal, get_args

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Modality = Literal["image", "text"]
OptimizerName = Literal["lars", "sgd", "adamw"]
ResnetArch = Literal["resnet18", "resnet34", "resnet50"]
Stem = Literal["auto", "small", "standard"]
SimCLRPreset = Literal["general", "copy-detection"]  # pretrain simclr's recipes (train.presets)
CentreMode = Literal["auto", "yes", "no"]  # remove the corpus mean inside an index (index.centring)

DEVICES: tuple[str, ...] = get_args(Device)
PRECISIONS: tuple[str, ...] = get_args(Precision)
MODALITIES: tuple[str, ...] = get_args(Modality)
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)
RESNET_ARCHS: tuple[str, ...] = get_args(ResnetArch)
CENTRE_MODES: tuple[str, ...] = get_args(CentreMode)
# Model labels of vectors made by another tool (``embedsearch import``): never loadable
EXTERNAL_MODEL_PREFIX = "external:"
