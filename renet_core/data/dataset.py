"""``AUDataset``: the training/testing inputs of section 4.3 over prepared crops.

Paper section 4.3: faces "aligned and cropped to the size of 256x256 ..., randomly cropped to
224x224 for training, and center-cropping for testing. Random horizontal flip is also applied
during training." Section 4.6: frames positive for the rare AUs (AU1, AU2, AU15, AU23, AU24 on
BP4D) are duplicated once (``duplicate_aus``).

Crops are decoded with OpenCV and augmented with plain tensor slicing, so an item costs one JPEG
decode (or nothing with ``in_memory=True``, which decodes every crop once up front: meant for
small demo sets). With ``normalise=False`` (what the engine uses) items stay uint8 and a whole
batch is normalised on its device by :func:`normalise`: a worker does ~40% less work per item
and the loader, pinned memory and the bus carry a quarter of the bytes. If the cache size differs from ``round(image_size * 256 / 224)`` the crop is
resized to it first, keeping the paper's 256:224 ratio.

Augmentation does not depend on the loader's workers: the crop offset and the flip of a training
item come from a generator seeded by (``seed``, epoch, item index) (:meth:`AUDataset.set_epoch`,
called by the training loader before each epoch's workers start), never from torch's global
RNG, which each worker process seeds its own way. So any ``num_workers`` gives the same batches.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from renet_core.base.progress import bar
from renet_core.data.labels import int_col, occ_col

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 RGB images ``[..., 3, H, W]`` (0-255) as ImageNet-normalised float32, on their device
    (the same arithmetic, element by element, as an item of ``AUDataset(normalise=True)``)."""
    mean, std = IMAGENET_MEAN.to(images.device), IMAGENET_STD.to(images.device)
    return (images.float().div_(255.0) - mean) / std


def resize_size(image_size: int) -> int:
    """Side of the resized crop before the random/centre crop: 256 for 224 (section 4.3)."""
    return int(round(image_size * 256 / 224))


def read_crop(path: str, side: int) -> np.ndarray:
    """RGB uint8 ``side x side`` array of a cached crop, decoded in full. A missing, cut short
    or undecodable crop is an error naming it (never a grey-filled image): the next
    :func:`renet_core.data.prepare` of its cache (every run starts with one) makes it again."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FileNotFoundError(f"{path}: cached crop missing ({exc.strerror}); the next prepare() of "
                                "its cache (rerun the run) makes it again") from exc
    image = None
    if data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9":
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: cached crop damaged ({len(data)} bytes, not a complete JPEG); the "
                         "next prepare() of its cache (rerun the run) sees it and makes it again")
    if image.shape[0] != side or image.shape[1] != side:
        shrink = image.shape[0] > side
        image = cv2.resize(image, (side, side),
                           interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class AUDataset(Dataset):
    """Items ``(image [3,S,S] float ImageNet-normalised, target [C] float, mask [C] bool)``; with
    ``normalise=False`` the image is uint8 RGB, for :func:`normalise` on the batch's device.

    ``frames``: rows with a ``crop`` column (from :func:`renet_core.data.prepare`); ``aus``: AU
    numbers (columns ``AU<n>`` for ``task="occurrence"``, ``AU<n>_int`` for ``"intensity"``).
    Unknown labels (NaN) have target 0 and mask False. With ``train=True`` each item is randomly
    cropped and flipped by ``numpy.random.default_rng((seed, epoch, item))`` (:meth:`set_epoch`).
    """

    def __init__(self, frames: pd.DataFrame, aus, task: str = "occurrence", train: bool = False,
                 image_size: int = 224, duplicate_aus=None, in_memory: bool = False,
                 progress: bool = False, duplicate_rule: str = "frame", seed: int = 0,
                 normalise: bool = True):
        if task not in ("occurrence", "intensity"):
            raise ValueError(f"task must be 'occurrence' or 'intensity', got {task!r}")
        if "crop" not in frames.columns:
            raise ValueError("frames have no 'crop' column: run renet_core.data.prepare first")
        self.aus = [int(a) for a in aus]
        self.task, self.train, self.image_size = task, bool(train), int(image_size)
        if int(seed) < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self.seed, self.epoch, self.normalised = int(seed), 0, bool(normalise)
        self.side = resize_size(self.image_size)
        columns = [occ_col(a) if task == "occurrence" else int_col(a) for a in self.aus]
        missing = [c for c in columns if c not in frames.columns]
        if missing:
            raise KeyError(f"label columns {missing} not in frames (have "
                           f"{[c for c in frames.columns if c.startswith('AU')]})")
        labels = frames[columns].to_numpy(dtype=np.float32)
        self.crops = frames["crop"].astype(str).tolist()
        self.mask = torch.from_numpy(~np.isnan(labels))
        self.targets = torch.from_numpy(np.nan_to_num(labels, nan=0.0))
        self.positions = np.arange(len(frames))
        if duplicate_rule not in ("frame", "per_au"):
            raise ValueError(f"duplicate_rule must be 'frame' or 'per_au', got {duplicate_rule!r}")
        if duplicate_aus:   # Table 8: once per frame positive for any listed AU, or once per such AU
            groups = [duplicate_aus] if duplicate_rule == "frame" else [[au] for au in duplicate_aus]
            self.positions = np.concatenate(
                [self.positions] + [np.flatnonzero(positive_for_any(frames, g)) for g in groups])
        self.images = None
        if in_memory:
            self.images = self._decode_all(progress)

    def _decode_all(self, progress: bool) -> torch.Tensor:
        out = torch.empty((len(self.crops), self.side, self.side, 3), dtype=torch.uint8)
        for i, path in enumerate(bar(self.crops, desc="decode crops", disable=not progress)):
            out[i] = torch.from_numpy(read_crop(path, self.side))
        return out

    def __len__(self) -> int:
        return len(self.positions)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose augmentation the next items draw: call it before the epoch's loader
        starts its workers (they take a copy of the dataset when they start)."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def augmentation(self, item: int) -> tuple[int, int, bool]:
        """``(top, left, flip)`` of training item ``item`` in the current epoch: a function of
        (seed, epoch, item) only, whichever process draws it."""
        rng = np.random.default_rng((self.seed, self.epoch, int(item)))
        top, left = (int(v) for v in rng.integers(0, self.side - self.image_size + 1, size=2))
        return top, left, bool(rng.random() < 0.5)

    def __getitem__(self, item: int):
        i = int(self.positions[item])
        if self.images is not None:
            image = self.images[i].numpy()
        else:
            image = read_crop(self.crops[i], self.side)
        s, size = self.side, self.image_size
        if self.train:
            top, left, flip = self.augmentation(item)
            image = image[top:top + size, left:left + size]
            if flip:
                image = image[:, ::-1]
        else:
            top = (s - size) // 2
            image = image[top:top + size, top:top + size]
        # numpy, not torch, for the per-item work: single-threaded, so it does not stall on torch's
        # thread pool when the loader runs in the training process on a busy machine
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))   # HWC -> CHW
        if self.normalised:
            image = normalise(image).contiguous()
        return image, self.targets[i].clone(), self.mask[i].clone()


def positive_for_any(frames: pd.DataFrame, aus) -> np.ndarray:
    """Rows positive (occurrence 1, or intensity > 0 where only intensity exists) for any AU."""
    hit = np.zeros(len(frames), dtype=bool)
    for au in aus:
        if occ_col(au) in frames:
            hit |= frames[occ_col(au)].to_numpy(dtype=float) == 1.0
        elif int_col(au) in frames:
            hit |= frames[int_col(au)].to_numpy(dtype=float) > 0
        else:
            raise KeyError(f"duplicate_aus: no column {occ_col(au)} or {int_col(au)} in frames")
    return hit
