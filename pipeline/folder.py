"""ImageFolder data: `DIR/train/<class>/*.png|jpg` and `DIR/val/<class>/…`, read by torchvision.

The layout every ImageNet-style or custom dataset uses. Images are read and transformed on the
fly by `torchvision.datasets.ImageFolder` (workers and pinned memory on CUDA):

* train: `RandomResizedCrop(image_size)` and `RandomHorizontalFlip()` with `augment`, else
  `Resize(image_size)` + `CenterCrop(image_size)`;
* val: `Resize(round(image_size · 8/7))` + `CenterCrop(image_size)` (the usual 224-of-256).

Batches stay uint8 until `normalise` (ImageNet's channel statistics), as for `ImageData`.
Before training, every image is opened once (`verify`), so a broken file is named up front
rather than failing an epoch; `skip_unreadable=True` (`--skip-unreadable`) drops such files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from pipeline.normalise import normalised

__all__ = ["FolderData", "load_imagefolder"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass(frozen=True)
class FolderData:
    """A train/val split of an image folder, streamed through ImageFolder transforms."""

    name: str
    train_set: Dataset
    test_set: Dataset
    train_y: torch.Tensor  # int64 labels of train_set, in its order
    test_y: torch.Tensor
    num_classes: int
    image_size: int
    classes: tuple[str, ...] = field(default=())
    max_value: float = 255.0
    augments_itself: bool = True  # flips and crops come from the transforms
    mean: torch.Tensor = field(default_factory=lambda: torch.tensor(IMAGENET_MEAN))
    std: torch.Tensor = field(default_factory=lambda: torch.tensor(IMAGENET_STD))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Return (C, H, W) = (3, image_size, image_size)."""
        return (3, self.image_size, self.image_size)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Return (x / 255 − mean) / std as float32, per channel, on x's device."""
        return normalised(x, self.mean, self.std, self.max_value)

    def batches(
        self,
        split: str,
        batch_size: int,
        sampler: Sampler | None = None,
        *,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Return an iterator of (uint8 images, labels) batches of `split` ("train" or "test")."""
        dataset = self.train_set if split == "train" else self.test_set
        return iter(
            DataLoader(
                dataset,
                batch_size=batch_size,
                sampler=sampler,
                shuffle=False,
                num_workers=workers,
                pin_memory=pin_memory,
                persistent_workers=False,
            )
        )

    def probe(self, n: int) -> torch.Tensor:
        """Return the first `n` validation images (uint8, n ≤ the split's size)."""
        n = min(n, len(self.test_set))
        return torch.stack([self.test_set[i][0] for i in range(n)])

    def subset(self, keep: np.ndarray) -> FolderData:
        """Return the data with only the training images at indices `keep`."""
        keep = np.sort(np.asarray(keep, dtype=np.int64))
        return FolderData(
            name=self.name,
            train_set=Subset(self.train_set, keep.tolist()),
            test_set=self.test_set,
            train_y=self.train_y[torch.as_tensor(keep)],
            test_y=self.test_y,
            num_classes=self.num_classes,
            image_size=self.image_size,
            classes=self.classes,
        )


def _rgb(image: object) -> object:
    return image.convert("RGB")  # type: ignore[attr-defined]


def _transforms(image_size: int, augment: bool) -> tuple[object, object]:
    from torchvision.transforms import v2

    to_uint8 = [v2.ToImage(), v2.ToDtype(torch.uint8, scale=True)]
    if augment:
        train = [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
    else:
        train = [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    val = [v2.Resize(round(image_size * 8 / 7), antialias=True), v2.CenterCrop(image_size)]
    rgb = v2.Lambda(_rgb)
    return v2.Compose([rgb, *train, *to_uint8]), v2.Compose([rgb, *val, *to_uint8])


def _folder(root: Path, split: str, transform: object, skip_unreadable: bool) -> Dataset:
    """Return the ImageFolder of `root/split`, every image checked to open (or skipped)."""
    from PIL import Image
    from torchvision.datasets import ImageFolder

    path = root / split
    if not path.is_dir():
        raise ValueError(
            f"--data-dir {root}: no {split}/ folder; expected {root}/{split}/<class>/*.png|jpg"
        )
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"--data-dir {root}: {path} holds no class folders")
    for c in classes:
        if not any(f.suffix.lower() in SUFFIXES for f in (path / c).iterdir() if f.is_file()):
            raise ValueError(
                f"--data-dir {root}: the class folder {path / c} holds no image "
                f"({', '.join(SUFFIXES)}); remove it or add images"
            )
    bad: list[str] = []

    def readable(file: str) -> bool:
        if not file.lower().endswith(SUFFIXES):
            return False
        try:
            with Image.open(file) as im:
                im.verify()
        except Exception:  # PIL raises many types for a broken file
            bad.append(file)
            return False
        return True

    folder = ImageFolder(str(path), transform=transform, is_valid_file=readable)
    if bad and not skip_unreadable:
        raise ValueError(
            f"--data-dir {root}: {len(bad)} unreadable image(s), first {bad[0]}; fix or delete "
            "them, or pass --skip-unreadable to leave them out"
        )
    return folder


def load_imagefolder(
    data_dir: str | Path,
    image_size: int,
    *,
    augment: bool = True,
    skip_unreadable: bool = False,
) -> FolderData:
    """Return the ImageFolder data of `data_dir` (`train/` and `val/`, the same class folders)."""
    try:
        import torchvision  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "--dataset imagefolder needs torchvision: pip install torchvision"
        ) from err
    root = Path(data_dir).expanduser()
    train_tf, val_tf = _transforms(image_size, augment)
    train = _folder(root, "train", train_tf, skip_unreadable)
    val = _folder(root, "val", val_tf, skip_unreadable)
    if val.classes != train.classes:
        raise ValueError(
            f"--data-dir {root}: train/ and val/ name different classes "
            f"({sorted(set(train.classes) ^ set(val.classes))[:5]} in only one)"
        )
    return FolderData(
        name=f"imagefolder:{root.name}",
        train_set=train,
        test_set=val,
        train_y=torch.as_tensor(train.targets, dtype=torch.int64),
        test_y=torch.as_tensor(val.targets, dtype=torch.int64),
        num_classes=len(train.classes),
        image_size=image_size,
        classes=tuple(train.classes),
    )
