"""parse_params: typed parameter blocks, command-line strings coerced, every mistake named."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from yolo_mlops.pipelines.params import ParameterError, params_to_dict, parse_params


@dataclass(frozen=True)
class Inner:
    size: int = 1


@dataclass(frozen=True)
class Block:
    name: str
    epochs: int = 3
    lr: float = 0.01
    amp: bool = True
    mode: Literal["fast", "exact"] = "fast"
    resume: bool | str = False
    weights: str | None = ""
    sizes: tuple[int, ...] = (320,)
    pair: tuple[int, float] = (1, 2.0)
    names: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")


def test_command_line_strings_become_the_declared_types():
    block = parse_params(
        Block,
        {"name": 7, "epochs": "5", "lr": "0.1", "amp": "off", "resume": "last.pt",
         "weights": None, "sizes": [640, "320"], "pair": ["2", "0.5"], "inner": {"size": 4.0}},
        "block",
    )  # fmt: skip
    assert block == Block(
        name="7", epochs=5, lr=0.1, amp=False, resume="last.pt", weights=None,
        sizes=(640, 320), pair=(2, 0.5), inner=Inner(4),
    )  # fmt: skip


def test_round_trip_through_a_plain_dict():
    block = Block(name="x", sizes=(1, 2), names=["a"], extra={"k": 1})
    assert params_to_dict(block)["sizes"] == [1, 2]
    assert parse_params(Block, params_to_dict(block)) == block
    assert parse_params(Block, block) is block


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "epoch": 3}, r"unknown parameter\(s\) block\.epoch; allowed keys"),
        ({}, r"missing required parameter block\.name"),
        ({"name": "x", "epochs": "three"}, r"block\.epochs: expected an integer"),
        ({"name": "x", "epochs": True}, r"block\.epochs: expected an integer"),
        ({"name": "x", "epochs": 2.5}, r"block\.epochs: expected an integer"),
        ({"name": "x", "lr": "fast"}, r"block\.lr: expected a number"),
        ({"name": "x", "amp": "maybe"}, r"block\.amp: expected true/false"),
        ({"name": "x", "mode": "slow"}, r"block\.mode: 'slow' is not one of"),
        ({"name": "x", "resume": [1]}, r"block\.resume: \[1\] matches none of"),
        ({"name": "x", "sizes": "320"}, r"block\.sizes: expected a list"),
        ({"name": "x", "pair": [1]}, r"block\.pair: expected 2 values, got 1"),
        ({"name": "x", "extra": [1]}, r"block\.extra: expected a mapping"),
        ({"name": "x", "inner": {"size": "big"}}, r"block\.inner\.size: expected an integer"),
        ({"name": ["x"]}, r"block\.name: expected a string"),
        ({"name": "x", "epochs": 0}, r"block: epochs must be >= 1"),
    ],
)
def test_every_mistake_names_the_dotted_key(data, message):
    with pytest.raises(ParameterError, match=message):
        parse_params(Block, data, "block")
