"""Image classification data for the pipeline: sklearn digits (shipped), CIFAR-10/100 (local files).

An image folder (`--dataset imagefolder`) is read by `pipeline.folder`; both kinds give uint8
batches through `batches(split, batch_size, sampler)` and `probe(n)`.

Nothing is downloaded. `digits` is scikit-learn's copy of the UCI handwritten digits (1797 8×8
grey images, values 0..16) that ships inside the package. CIFAR is read from the standard
python-pickle release under `--data-dir`:

* CIFAR-10: `cifar-10-batches-py/{data_batch_1..5, test_batch}` (from cifar-10-python.tar.gz);
* CIFAR-100: `cifar-100-python/{train, test}` (from cifar-100-python.tar.gz), fine labels.

`data_dir` may be the folder holding `cifar-10-batches-py` / `cifar-100-python` or that folder
itself. The pickles are read with an unpickler that only admits numpy arrays, so a stray file
cannot run code. Images are kept as uint8 (B, C, H, W); `ImageData.normalise` maps a batch to
zero mean and unit variance per channel (statistics of the training images).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch.utils.data import Sampler

from constructions.validate import positive_int
from pipeline.normalise import normalised

if TYPE_CHECKING:
    from pipeline.folder import FolderData

__all__ = [
    "DATASETS",
    "ImageData",
    "balanced_indices",
    "load_cifar",
    "load_dataset",
    "load_digits",
    "subsample",
]

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")

_CIFAR = {
    "cifar10": dict(
        folder="cifar-10-batches-py",
        train=[f"data_batch_{i}" for i in range(1, 6)],
        test=["test_batch"],
        labels=b"labels",
        classes=10,
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ),
    "cifar100": dict(
        folder="cifar-100-python",
        train=["train"],
        test=["test"],
        labels=b"fine_labels",
        classes=100,
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    ),
}


@dataclass(frozen=True)
class ImageData:
    """A train/test split: uint8 images (N, C, H, W), int64 labels, and the normalisation."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    max_value: float  # the value of a white pixel: 16 for digits, 255 for CIFAR
    mean: torch.Tensor  # (C,), of train_x / max_value
    std: torch.Tensor  # (C,)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Return (C, H, W)."""
        return tuple(self.train_x.shape[1:])

    augments_itself: ClassVar[bool] = False  # the training loop flips and shifts (`augment`)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Return (x / max_value − mean) / std as float32, per channel, on x's device."""
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
        """Return an iterator of (uint8 images, labels) batches of `split` ("train" or "test").

        In memory: each batch is one index into the tensors (`sampler` order, else in order).
        """
        xs, ys = (self.train_x, self.train_y) if split == "train" else (self.test_x, self.test_y)
        order = list(sampler) if sampler is not None else range(len(ys))
        for start in range(0, len(order), batch_size):
            idx = torch.as_tensor(order[start : start + batch_size], dtype=torch.int64)
            yield xs[idx], ys[idx]

    def probe(self, n: int) -> torch.Tensor:
        """Return the first `n` test images (uint8)."""
        return self.test_x[:n]

    def subset(self, keep: np.ndarray) -> ImageData:
        """Return the data with only the training images at indices `keep` (statistics redone)."""
        keep = np.sort(np.asarray(keep, dtype=np.int64))
        return _make(
            self.name,
            self.train_x[keep].numpy(),
            self.train_y.numpy()[keep],
            self.test_x.numpy(),
            self.test_y.numpy(),
            self.num_classes,
            self.max_value,
        )


def _make(
    name: str,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    num_classes: int,
    max_value: float,
) -> ImageData:
    tx = torch.as_tensor(np.ascontiguousarray(train_x), dtype=torch.uint8)
    scaled = tx.double() / max_value
    mean = scaled.mean(dim=(0, 2, 3))
    std = scaled.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return ImageData(
        name=name,
        train_x=tx,
        train_y=torch.as_tensor(np.asarray(train_y), dtype=torch.int64),
        test_x=torch.as_tensor(np.ascontiguousarray(test_x), dtype=torch.uint8),
        test_y=torch.as_tensor(np.asarray(test_y), dtype=torch.int64),
        num_classes=num_classes,
        max_value=float(max_value),
        mean=mean.float(),
        std=std.float(),
    )


def _stratified_split(
    y: np.ndarray, per_class_test: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return (train indices, test indices): a fraction `per_class_test` of each class to test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = round(per_class_test * len(idx))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits(test_fraction: float = 0.5, split_seed: int = 0) -> ImageData:
    """Return scikit-learn's digits (1×8×8, 10 classes) split per class into train and test.

    The split is fixed by `split_seed` (stratified); `subsample` then picks a low-data subset of
    the training half, so every training seed is scored on the same test images.
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "dataset='digits' needs scikit-learn: pip install 'conv-as-attention[pipeline]'"
        ) from err
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    bunch = _sk_load_digits()
    images = bunch.images.astype(np.uint8)[:, None]  # (1797, 1, 8, 8), values 0..16
    labels = bunch.target.astype(np.int64)
    train, test = _stratified_split(labels, test_fraction, split_seed)
    return _make("digits", images[train], labels[train], images[test], labels[test], 10, 16.0)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that admits numpy arrays, bytes and plain containers and nothing else."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("_codecs", "encode"),  # how protocol 2 writes Python 3 bytes
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: CIFAR pickles hold only numpy arrays"
            )
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    return _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()


def _cifar_folder(name: str, data_dir: str | Path) -> Path:
    """Return the folder holding the CIFAR files, or raise FileNotFoundError naming them."""
    spec = _CIFAR[name]
    root = Path(data_dir).expanduser()
    expected = spec["train"] + spec["test"]
    candidates = [root / spec["folder"], root]
    for folder in candidates:
        if all((folder / f).is_file() for f in expected):
            return folder
    folder = candidates[0]
    missing = [f for f in expected if not (folder / f).is_file()]
    raise FileNotFoundError(
        f"dataset={name!r}: no CIFAR files in data_dir={str(root)!r}. Expected the folder "
        f"{str(folder)!r} with the files {expected} (missing: {missing}). Nothing is downloaded: "
        f"fetch {spec['url']} yourself and unpack it into {str(root)!r}"
    )


def load_cifar(name: str, data_dir: str | Path) -> ImageData:
    """Return CIFAR-10 or CIFAR-100 (3×32×32) read from the python-pickle release in `data_dir`."""
    if name not in _CIFAR:
        raise ValueError(f"name={name!r}: expected one of {tuple(_CIFAR)}")
    spec = _CIFAR[name]
    folder = _cifar_folder(name, data_dir)

    def read(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for f in files:
            batch = _read_pickle(folder / f)
            if b"data" not in batch or spec["labels"] not in batch:
                raise ValueError(
                    f"{folder / f} is not a {name} batch: it lacks the keys b'data' and "
                    f"{spec['labels']!r} (keys found: {sorted(batch)})"
                )
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[spec["labels"]], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    train_x, train_y = read(spec["train"])
    test_x, test_y = read(spec["test"])
    return _make(name, train_x, train_y, test_x, test_y, spec["classes"], 255.0)


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    image_size: int | None = None,
    augment: bool = True,
    skip_unreadable: bool = False,
) -> ImageData | FolderData:
    """Return the dataset `name` in DATASETS (`data_dir` for CIFAR and imagefolder).

    `image_size`, `augment` and `skip_unreadable` are for "imagefolder" (`pipeline.folder`).
    """
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r}: expected one of {DATASETS}")
    if image_size is not None and name != "imagefolder":
        raise ValueError(
            f"image_size={image_size}: only --dataset imagefolder is resized; {name} images "
            "keep their own size"
        )
    if name == "digits":
        return load_digits()
    if data_dir is None:
        held = _CIFAR[name]["folder"] if name in _CIFAR else "train/ and val/"
        raise ValueError(
            f"dataset={name!r} is read from local files: pass data_dir (--data-dir) pointing to "
            f"the folder that holds {held!r}"
        )
    if name == "imagefolder":
        from pipeline.folder import load_imagefolder

        size = positive_int(224 if image_size is None else image_size, "image_size")
        return load_imagefolder(data_dir, size, augment=augment, skip_unreadable=skip_unreadable)
    return load_cifar(name, data_dir)


def balanced_indices(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Return `size` sorted indices of `labels`, class-balanced (round-robin over classes)."""
    n = len(labels)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    # Round-robin over classes: the k-th image of every class before the (k+1)-th of any.
    rank = np.empty(n, dtype=np.int64)
    for c in np.unique(labels):
        members = order[labels[order] == c]
        rank[members] = np.arange(len(members))
    return np.sort(order[np.lexsort((np.arange(n), rank[order]))][:size])


def subsample(data: ImageData, train_size: int | None, seed: int = 0) -> ImageData:
    """Return `data` with a class-balanced subset of `train_size` training images (None: all).

    The subset is a fixed function of `seed` (the same for every training seed by default), and
    the normalisation statistics are recomputed on it (in memory); the test images are
    unchanged. Works for `ImageData` and `pipeline.folder.FolderData` alike.
    """
    if train_size is None:
        return data
    n = len(data.train_y)
    train_size = positive_int(train_size, "train_size")
    if train_size > n:
        raise ValueError(f"train_size={train_size} exceeds the {n} training images of {data.name}")
    return data.subset(balanced_indices(data.train_y.numpy(), train_size, seed))
