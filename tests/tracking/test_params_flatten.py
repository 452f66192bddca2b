from yolo_mlops.tracking.params_flatten import (
    TRUNCATION_MARK,
    flatten,
    flatten_for_mlflow,
    sanitize_key,
)


def test_flatten_nests_to_dotted_keys_and_keeps_lists():
    params = {"training": {"optimizer": {"lr0": 0.01}, "imgsz": 64}, "names": ["a", "b"], "e": {}}
    assert flatten(params) == {
        "training.optimizer.lr0": 0.01,
        "training.imgsz": 64,
        "names": ["a", "b"],
        "e": {},
    }


def test_flatten_for_mlflow_truncates_long_values_and_reports_them():
    flat, truncated = flatten_for_mlflow({"a": {"long": "x" * 700, "short": 1}}, max_length=500)
    assert len(flat["a.long"]) == 500
    assert flat["a.long"].endswith(TRUNCATION_MARK)
    assert flat["a.short"] == "1"
    assert truncated == ["a.long"]


def test_flatten_for_mlflow_defaults_to_mlflow_limit():
    flat, truncated = flatten_for_mlflow({"v": "y" * 5999, "w": None})
    assert flat["v"] == "y" * 5999
    assert flat["w"] == "None"
    assert truncated == []


def test_sanitize_key_replaces_characters_mlflow_rejects():
    assert sanitize_key("metrics/mAP50(B)") == "metrics/mAP50_B_"
    assert sanitize_key("k" * 300) == "k" * 250
