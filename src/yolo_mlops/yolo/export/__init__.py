"""Exported models: ONNX export, the ONNX Runtime backend, INT8 quantisation, numpy NMS.

Nothing is imported here, so ``import yolo_mlops.yolo`` does not load onnx or onnxruntime:

* :mod:`.onnx_export` — ``export_onnx`` and ``export_checkpoint`` (torch, onnx);
* :mod:`.runtime` — ``OnnxRuntimeDetector``, the ``onnxruntime`` backend (numpy, no torch);
* :mod:`.postprocess` — NMS and ``ImageDetections`` in numpy (no torch);
* :mod:`.quantize` — INT8 static quantisation with ONNX Runtime (QDQ, per-channel weights).
"""
