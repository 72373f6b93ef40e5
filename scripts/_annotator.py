"""A simulated annotator for `make demo --backend label_studio` (development only).

While the pipeline's `label` task waits for Label Studio, this thread plays the human: it
finds the project, and for each task without an annotation it submits the boxes of the
sample data's answer key (include/sample_data/output.manifest), through the same REST call
the labelling UI makes: POST /api/tasks/{id}/annotations/ with percent coordinates.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import requests

ANSWER_KEY = Path(__file__).resolve().parent.parent / "include" / "sample_data" / "output.manifest"


def _answer_key(label_attribute: str = "bounding-box") -> dict[str, dict]:
    key = {}
    for line in ANSWER_KEY.read_text().splitlines():
        item = json.loads(line)
        key[item["source-ref"].rsplit("/", 1)[-1]] = item
    return key


def _result(item: dict, label_attribute: str = "bounding-box") -> list[dict]:
    size = item[label_attribute]["image_size"][0]
    names = item[f"{label_attribute}-metadata"]["class-map"]
    width, height = size["width"], size["height"]
    return [
        {
            "id": uuid.uuid4().hex[:10], "from_name": "label", "to_name": "image", "type": "rectanglelabels",
            "original_width": width, "original_height": height, "image_rotation": 0,
            "value": {
                "x": 100 * a["left"] / width, "y": 100 * a["top"] / height,
                "width": 100 * a["width"] / width, "height": 100 * a["height"] / height,
                "rotation": 0, "rectanglelabels": [names[str(a["class_id"])]],
            },
        }
        for a in item[label_attribute]["annotations"]
    ]


class SimulatedAnnotator(threading.Thread):
    """Annotates every task of the project titled ``project_title``; bounded by ``max_seconds``."""

    def __init__(self, url: str, token: str, project_title: str, max_seconds: float = 300):
        super().__init__(daemon=True, name="simulated-annotator")
        self.url, self.project_title, self.max_seconds = url.rstrip("/"), project_title, max_seconds
        self.headers = {"Authorization": f"Token {token}"}
        self.annotated = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        key = _answer_key()
        done: set[int] = set()
        deadline = time.monotonic() + self.max_seconds
        while not self._stop_event.is_set() and time.monotonic() < deadline:
            try:
                projects = requests.get(f"{self.url}/api/projects/", params={"title": self.project_title},
                                        headers=self.headers, timeout=10).json()
                projects = projects.get("results", projects) if isinstance(projects, dict) else projects
                for project in (p for p in projects if p.get("title") == self.project_title):
                    tasks = requests.get(f"{self.url}/api/tasks/", params={"project": project["id"],
                                                                            "page_size": 1000},
                                         headers=self.headers, timeout=10).json()
                    tasks = tasks.get("tasks", tasks) if isinstance(tasks, dict) else tasks
                    for task in tasks:
                        if task["id"] in done or task.get("total_annotations"):
                            done.add(task["id"])
                            continue
                        name = str(task["data"].get("s3_uri") or task["data"]["image"]).split("?")[0]
                        item = key.get(name.rsplit("/", 1)[-1])
                        if item is None:
                            continue
                        requests.post(f"{self.url}/api/tasks/{task['id']}/annotations/", headers=self.headers,
                                      json={"result": _result(item), "was_cancelled": False},
                                      timeout=10).raise_for_status()
                        done.add(task["id"])
                        self.annotated += 1
            except requests.RequestException:
                pass  # the server may be busy importing; try again on the next round
            self._stop_event.wait(1.0)
