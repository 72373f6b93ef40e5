"""Generate include/sample_data: small JPEGs of shapes with known boxes, and their
Ground Truth output manifest (the answer key used by the import backend, the emulator's
labeling jobs and its endpoint).

Deterministic: the same seed gives byte-identical files, so re-running it leaves git clean.
Run: .venv/bin/python scripts/make_sample_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "include" / "sample_data"
CLASSES = ["circle", "square", "triangle"]
# The original labeling location; the import backend rewrites it to the synced prefix.
SOURCE_PREFIX = "s3://example-labeling-bucket/shapes/"
LABEL_ATTRIBUTE = "bounding-box"
NUM_IMAGES = 12
SIZES = [(320, 240), (256, 256), (240, 320)]


def _boxes(rng: random.Random, width: int, height: int) -> list[dict]:
    boxes: list[dict] = []
    for _ in range(rng.randint(1, 3)):
        for _attempt in range(50):
            w = rng.randint(30, width // 2)
            h = rng.randint(30, height // 2)
            left = rng.randint(0, width - w)
            top = rng.randint(0, height - h)
            overlaps = any(
                left < b["left"] + b["width"] and b["left"] < left + w
                and top < b["top"] + b["height"] and b["top"] < top + h
                for b in boxes
            )
            if not overlaps:
                boxes.append({"class_id": rng.randrange(len(CLASSES)), "left": left, "top": top,
                              "width": w, "height": h})
                break
    return boxes


def _draw(draw: ImageDraw.ImageDraw, box: dict, colour: tuple[int, int, int]) -> None:
    x0, y0 = box["left"], box["top"]
    x1, y1 = x0 + box["width"] - 1, y0 + box["height"] - 1
    shape = CLASSES[box["class_id"]]
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    elif shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=colour)
    else:
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=colour)


def main() -> None:
    rng = random.Random(20261125)
    images = OUT / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(NUM_IMAGES):
        width, height = SIZES[i % len(SIZES)]
        background = tuple(rng.randint(200, 255) for _ in range(3))
        img = Image.new("RGB", (width, height), background)
        draw = ImageDraw.Draw(img)
        boxes = _boxes(rng, width, height) if i != NUM_IMAGES - 1 else []  # one image with no objects
        for box in boxes:
            _draw(draw, box, tuple(rng.randint(0, 150) for _ in range(3)))
        name = f"shape_{i:03d}.jpg"
        img.save(images / name, "JPEG", quality=85)
        lines.append({
            "source-ref": SOURCE_PREFIX + name,
            LABEL_ATTRIBUTE: {
                "image_size": [{"width": width, "height": height, "depth": 3}],
                "annotations": boxes,
            },
            f"{LABEL_ATTRIBUTE}-metadata": {
                "objects": [{"confidence": 0.95} for _ in boxes],
                "class-map": {str(k): v for k, v in enumerate(CLASSES)},
                "type": "groundtruth/object-detection",
                "human-annotated": "yes",
                "creation-date": "2026-11-01T00:00:00.000000",
                "job-name": "labeling-job/shapes-sample",
            },
        })
    with open(OUT / "output.manifest", "w") as fh:
        for line in lines:
            fh.write(json.dumps(line, separators=(",", ":")) + "\n")
    (OUT / "classes.json").write_text(json.dumps(CLASSES) + "\n")


if __name__ == "__main__":
    main()
