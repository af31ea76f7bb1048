"""Real photos that ship inside scikit-image and scikit-learn, with the ImageNet classes each shows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Photo:
    name: str
    rgb: np.ndarray  # HxWx3 uint8
    imagenet_classes: frozenset  # indices counted as a correct top-1 prediction


# Class sets: the object in the photo and its obvious ImageNet synonyms (torchvision class indices).
_EXPECTED = {
    "chelsea": {281, 282, 283, 284, 285, 287},  # tabby, tiger cat, Persian, Siamese, Egyptian, lynx
    "coffee": {504, 967, 968},  # coffee mug, espresso, cup
    "rocket": {657, 744, 812},  # missile, projectile, space shuttle
    "astronaut": {652, 834, 869, 906, 457, 617},  # military uniform, suit, trench coat, Windsor tie, bow tie, lab coat
    "camera": {759, 872},  # reflex camera, tripod (the cameraman photo)
    "china": {483, 538, 668, 698, 832},  # castle, dome, mosque, palace, stupa
    "flower": {985, 309, 738},  # daisy, bee, pot (flowerpot)
    "stereo_motorcycle": {665, 670},  # moped, motor scooter
}


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def load_photos() -> list[Photo]:
    """The shipped photos; no network needed."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    images = {name: getattr(skimage.data, name)() for name in ("chelsea", "coffee", "rocket", "astronaut", "camera")}
    images["stereo_motorcycle"] = skimage.data.stereo_motorcycle()[0]  # (left, right, disparity)
    sample = load_sample_images()
    for path, image in zip(sample.filenames, sample.images, strict=True):
        images[path.rsplit("/", 1)[-1].split(".")[0]] = image
    return [Photo(name, _rgb(img), frozenset(_EXPECTED[name])) for name, img in images.items()]
