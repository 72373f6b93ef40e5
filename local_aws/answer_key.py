"""The sample data's answer key, indexed once at start so lookups on hot paths are dict hits.

``include/sample_data`` holds small JPEGs and their Ground Truth ``output.manifest``. The
emulator uses it twice: labeling jobs "label" an image by copying its boxes from here (matched
by file basename), and the endpoint "predicts" by returning the true boxes of an image whose
bytes hash to a known sample (matched by sha256). Nothing here is a model; it is a lookup.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Built-in object-detection algorithm response: [class_id, score, xmin, ymin, xmax, ymax].
Prediction = list[float]


@dataclass(frozen=True)
class SampleImage:
    """One answer-key image: its size and its true boxes (pixels, Ground Truth layout)."""

    basename: str
    width: int
    height: int
    depth: int
    annotations: tuple[dict[str, int], ...]


@dataclass
class AnswerKey:
    """Sample images by basename and by content hash, plus the class list they use."""

    classes: list[str]
    by_basename: dict[str, SampleImage] = field(default_factory=dict)
    # sha256 hex digest of the file bytes -> precomputed JSON response body.
    predictions_by_sha256: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def load(cls, sample_data_dir: Path) -> AnswerKey:
        """Read ``output.manifest`` and hash every image in ``images/``; fail loudly if absent."""
        manifest = sample_data_dir / "output.manifest"
        images_dir = sample_data_dir / "images"
        if not manifest.is_file() or not images_dir.is_dir():
            raise FileNotFoundError(
                f"{sample_data_dir} must hold output.manifest and images/ (see scripts/make_sample_data.py)"
            )
        key = cls(classes=[])
        class_map: dict[int, str] = {}
        for lineno, raw in enumerate(manifest.read_text().splitlines(), start=1):
            if not raw.strip():
                continue
            line = json.loads(raw)
            attribute = _label_attribute(line, manifest, lineno)
            label, meta = line[attribute], line[f"{attribute}-metadata"]
            class_map.update({int(k): v for k, v in meta.get("class-map", {}).items()})
            size = label["image_size"][0]
            basename = line["source-ref"].rsplit("/", 1)[-1]
            key.by_basename[basename] = SampleImage(
                basename=basename,
                width=int(size["width"]),
                height=int(size["height"]),
                depth=int(size.get("depth", 3)),
                annotations=tuple(dict(a) for a in label["annotations"]),
            )
        key.classes = [class_map[i] for i in sorted(class_map)]
        for basename, image in key.by_basename.items():
            path = images_dir / basename
            if path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                body = {"prediction": true_predictions(image, digest)}
                key.predictions_by_sha256[digest] = json.dumps(body).encode()
        return key

    def class_name(self, class_id: int) -> str:
        """The sample data's name for ``class_id``."""
        return self.classes[class_id]


def _label_attribute(line: dict[str, Any], manifest: Path, lineno: int) -> str:
    """The line's label attribute: the key whose ``-metadata`` is an object-detection result."""
    for name, value in line.items():
        meta = line.get(f"{name}-metadata")
        if isinstance(value, dict) and isinstance(meta, dict) and "annotations" in value:
            return name
    raise ValueError(f"{manifest}:{lineno}: no object-detection label attribute")


def true_predictions(image: SampleImage, digest: str) -> list[Prediction]:
    """The image's true boxes, normalised to [0, 1], with a fake but stable score in 0.90-0.99."""
    out: list[Prediction] = []
    for i, a in enumerate(image.annotations):
        score = 0.90 + (int(digest[2 * i : 2 * i + 2], 16) % 10) / 100
        out.append([
            float(a["class_id"]),
            round(score, 2),
            round(a["left"] / image.width, 4),
            round(a["top"] / image.height, 4),
            round((a["left"] + a["width"]) / image.width, 4),
            round((a["top"] + a["height"]) / image.height, 4),
        ])
    return out


def hashed_predictions(digest: str, num_classes: int) -> list[Prediction]:
    """Two low-score boxes derived from the hash: an unknown image gets noise, never truth."""
    raw = bytes.fromhex(digest)
    out: list[Prediction] = []
    for i in range(2):
        b = raw[8 * i : 8 * i + 8]
        x0, y0 = b[0] / 255 * 0.6, b[1] / 255 * 0.6
        w, h = 0.1 + b[2] / 255 * 0.3, 0.1 + b[3] / 255 * 0.3
        score = 0.05 + b[4] / 255 * 0.25  # below any sensible confidence threshold
        out.append([
            float(b[5] % max(num_classes, 1)),
            round(score, 2),
            round(x0, 4),
            round(y0, 4),
            round(x0 + w, 4),
            round(y0 + h, 4),
        ])
    return out
