"""Exported models: ONNX export, the ONNX Runtime and OpenVINO backends, INT8, numpy NMS.

Nothing is imported here, so ``import yolo_mlops.yolo`` does not load onnx or a runtime:

* :mod:`.onnx_export` — ``export_onnx`` and ``export_checkpoint`` (torch, onnx);
* :mod:`.runtime` — ``ExportedDetector`` (what every runtime shares) and
  ``OnnxRuntimeDetector``, the ``onnxruntime`` backend (numpy, no torch);
* :mod:`.openvino_ir` — ``export_openvino`` and ``OpenVinoDetector``, the ``openvino`` backend
  (the optional ``openvino`` package; numpy, no torch);
* :mod:`.postprocess` — NMS and ``ImageDetections`` in numpy (no torch);
* :mod:`.quantize` — INT8 static quantisation with ONNX Runtime (QDQ, per-channel weights).
"""
