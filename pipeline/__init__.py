"""The two-phase CMHSA training pipeline (Li et al., arXiv 2111.01353): convolution, then attention.

A small ViT whose token mixers are k×k convolutions is trained first (phase 1), turned exactly into
a relative-position MHSA ViT with 9 heads per layer by the patch construction (T2,
`transfer`), and trained on (phase 2). `python -m pipeline train` runs the three arms the article
compares (MHSA from scratch, convolution only, two-phase) at equal total epochs, in one process
or data-parallel under `torchrun` (`distributed`), on digits, CIFAR or an image folder
(`folder`), resumable after every epoch (`resume`), optionally in mixed precision (`loop`).
`python -m pipeline finetune` runs phase 2 from any CNN converted by `constructions.convert`.
"""

from pipeline.data import DATASETS, ImageData, load_cifar, load_dataset, load_digits, subsample
from pipeline.finetune import FINETUNE_ARMS, attention_start, finetune
from pipeline.folder import FolderData, load_imagefolder
from pipeline.model import ConvMixer, ViT, ViTConfig
from pipeline.train import (
    ARMS,
    TRANSFER_TOLERANCE,
    TrainConfig,
    load_checkpoint,
    run_comparison,
    summarise,
    train_arm,
)
from pipeline.transfer import logit_error, transfer

__all__ = [
    "ARMS",
    "DATASETS",
    "FINETUNE_ARMS",
    "TRANSFER_TOLERANCE",
    "ConvMixer",
    "FolderData",
    "ImageData",
    "TrainConfig",
    "ViT",
    "ViTConfig",
    "attention_start",
    "finetune",
    "load_checkpoint",
    "load_cifar",
    "load_dataset",
    "load_digits",
    "load_imagefolder",
    "logit_error",
    "run_comparison",
    "subsample",
    "summarise",
    "train_arm",
    "transfer",
]
