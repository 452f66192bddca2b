"""The ``register`` pipeline: one node, ``register_model`` (tag ``register``)."""

from kedro.pipeline import Node, Pipeline

from yolo_mlops.pipelines.register.nodes import register_model


def create_pipeline(**kwargs) -> Pipeline:
    """Log the best checkpoint as an MLflow model, register it, apply the promotion gate."""
    return Pipeline(
        [
            Node(
                register_model,
                inputs=["model_checkpoint", "metrics", "params:register"],
                outputs="registration",
                name="register_model",
                tags=["register"],
            )
        ]
    )
