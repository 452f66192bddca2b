"""Augmentation: mosaic geometry, perspective, candidates, HSV, flips, MixUp, the full chain."""

from __future__ import annotations

import numpy as np
import pytest

from yolo_mlops.pipelines.params import ParameterError, parse_params
from yolo_mlops.yolo.data.augment import (
    AugmentConfig,
    apply_hsv,
    augment_sample,
    flip_horizontal,
    flip_vertical,
    mixup,
)
from yolo_mlops.yolo.data.letterbox import PAD_VALUE
from yolo_mlops.yolo.data.mosaic import Tile, mosaic4, mosaic9
from yolo_mlops.yolo.data.perspective import (
    CandidateRule,
    WarpParams,
    box_candidates,
    transform_boxes,
    warp_matrix,
    warp_tile,
)

SIZE = 64


def _tile(colour: int, height: int, width: int, boxes: list[list[float]], class_id: int) -> Tile:
    image = np.full((height, width, 3), colour, np.uint8)
    return Tile(image, np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), class_id))


def _random_tile(rng: np.random.Generator, size: int = SIZE) -> Tile:
    height, width = size, int(rng.integers(size // 2, size + 1))
    if rng.random() < 0.5:
        height, width = width, height
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    count = int(rng.integers(0, 5))
    xs = np.sort(rng.uniform(0, width, (count, 2)), axis=1)
    ys = np.sort(rng.uniform(0, height, (count, 2)), axis=1)
    boxes = np.stack([xs[:, 0], ys[:, 0], xs[:, 1] + 3, ys[:, 1] + 3], 1).clip(
        0, [width, height] * 2
    )
    return Tile(image, boxes.astype(np.float32), rng.integers(0, 3, count))


def test_mosaic_with_identity_warp_places_known_boxes_exactly():
    # 40x50 tiles around centre (64, 64) on a 128 canvas; identity warp (scale 1, no rotation,
    # shear, perspective, translate 0.5) crops the central 64x64, i.e. shifts everything by -32.
    tiles = [
        _tile(10, 40, 50, [[35, 25, 45, 35], [0, 0, 10, 10]], 0),  # second box is cut away
        _tile(20, 40, 50, [[0, 25, 10, 35]], 1),
        _tile(30, 40, 50, [[35, 0, 45, 10]], 2),
        _tile(40, 40, 50, [[0, 0, 10, 10]], 3),
    ]
    canvas = mosaic4(tiles, SIZE, (64, 64))
    assert canvas.image.shape == (128, 128, 3)
    out = warp_tile(canvas, WarpParams(), (SIZE, SIZE))
    expected = [[17, 17, 27, 27], [32, 17, 42, 27], [17, 32, 27, 42], [32, 32, 42, 42]]
    np.testing.assert_array_equal(out.boxes, np.array(expected, np.float32))
    np.testing.assert_array_equal(out.classes, [0, 1, 2, 3])
    for (y, x), colour in zip([(5, 5), (5, 60), (60, 5), (60, 60)], [10, 20, 30, 40], strict=True):
        assert (out.image[y, x] == colour).all()


def test_mosaic_cuts_tiles_at_the_canvas_and_keeps_the_part_near_the_centre():
    rng = np.random.default_rng(0)
    tiles = [Tile(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8), *Tile.empty_labels())]
    tiles += [_tile(c, SIZE, SIZE, [], 0) for c in (1, 2, 3)]
    canvas = mosaic4(tiles, SIZE, (20, 20))
    np.testing.assert_array_equal(canvas.image[:20, :20], tiles[0].image[44:, 44:])
    assert (canvas.image[84:, 84:] == PAD_VALUE).all()


def test_mosaic9_gives_a_2s_canvas_with_boxes_inside():
    rng = np.random.default_rng(1)
    out = mosaic9([_random_tile(rng) for _ in range(9)], SIZE)
    assert out.image.shape == (2 * SIZE, 2 * SIZE, 3)
    assert (out.boxes >= 0).all() and (out.boxes <= 2 * SIZE).all()
    assert (out.boxes[:, 2:] > out.boxes[:, :2]).all()


def test_mosaic_rejects_wrong_tile_count():
    with pytest.raises(ValueError, match="4 tiles"):
        mosaic4([_tile(0, 8, 8, [], 0)] * 3, SIZE, (64, 64))


@pytest.mark.parametrize("tiles", [4, 9])
def test_augmented_boxes_never_leave_the_canvas(tiles):
    rng = np.random.default_rng(2)
    pool = [_random_tile(rng) for _ in range(6)]
    config = AugmentConfig(
        mosaic_tiles=tiles, degrees=30, shear=10, perspective=0.001, scale=0.9, translate=0.5,
        mixup=0.5, flipud=0.5,
    )  # fmt: skip
    for seed in range(30):
        out = augment_sample(
            pool.__getitem__,
            np.arange(6),
            seed % 6,
            size=SIZE,
            config=config,
            rng=np.random.default_rng(seed),
        )
        assert out.image.shape == (SIZE, SIZE, 3) and out.image.dtype == np.uint8
        assert (out.boxes >= 0).all() and (out.boxes <= SIZE).all()
        widths, heights = out.boxes[:, 2] - out.boxes[:, 0], out.boxes[:, 3] - out.boxes[:, 1]
        assert (widths > 2).all() and (heights > 2).all()
        assert len(out.boxes) == len(out.classes)


def test_augment_sample_is_a_function_of_the_generator_only():
    rng = np.random.default_rng(3)
    pool = [_random_tile(rng) for _ in range(4)]
    first, second, other = (
        augment_sample(pool.__getitem__, np.arange(4), 1, size=SIZE, config=AugmentConfig(), rng=g)
        for g in (np.random.default_rng(7), np.random.default_rng(7), np.random.default_rng(8))
    )
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.boxes, second.boxes)
    assert not np.array_equal(first.image, other.image)


def test_flipping_twice_is_the_identity_and_flips_boxes_correctly():
    tile = _random_tile(np.random.default_rng(4))
    for flip in (flip_horizontal, flip_vertical):
        back = flip(flip(tile))
        np.testing.assert_array_equal(back.image, tile.image)
        np.testing.assert_allclose(back.boxes, tile.boxes, atol=1e-4)
    flipped = flip_horizontal(_tile(0, 10, 20, [[2, 1, 5, 4]], 0))
    np.testing.assert_array_equal(flipped.boxes, [[15, 1, 18, 4]])


def test_box_candidates_drop_small_thin_and_mostly_cut_boxes():
    before = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 500, 4]], np.float32)
    after = np.array([[0, 0, 10, 10], [0, 0, 2, 10], [0, 0, 3, 3], [0, 0, 500, 4]], np.float32)
    keep = box_candidates(before, after, 1.0, CandidateRule(max_aspect=100))
    np.testing.assert_array_equal(keep, [True, False, False, False])


def test_warp_matrix_scales_about_the_centre_and_transforms_boxes():
    matrix = warp_matrix(WarpParams(scale=2.0), (100, 100), (100, 100))
    np.testing.assert_allclose(
        transform_boxes(np.array([[40, 40, 60, 60]], float), matrix), [[30, 30, 70, 70]]
    )


def test_hsv_with_unit_gains_is_identity_and_hue_wraps_around():
    image = np.random.default_rng(5).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    assert apply_hsv(image, (1.0, 1.0, 1.0)) is image
    shifted = apply_hsv(image, (1.5, 1.0, 1.0))
    assert shifted.shape == image.shape and shifted.dtype == np.uint8
    assert not np.array_equal(shifted, image)


def test_mixup_blends_pixels_and_concatenates_labels():
    out = mixup(_tile(100, 8, 8, [[0, 0, 4, 4]], 0), _tile(200, 8, 8, [[1, 1, 5, 5]], 1), 0.5)
    assert (out.image == 150).all()
    np.testing.assert_array_equal(out.classes, [0, 1])


def test_augment_config_defaults_follow_the_spec_and_bad_values_fail():
    config = parse_params(AugmentConfig, {}, "preprocessing.augment")
    assert (config.mosaic, config.translate, config.scale, config.fliplr) == (1.0, 0.1, 0.5, 0.5)
    assert (config.hsv_h, config.hsv_s, config.hsv_v, config.mixup) == (0.015, 0.7, 0.4, 0.0)
    with pytest.raises(ParameterError, match="fliplr"):
        parse_params(AugmentConfig, {"fliplr": 1.5}, "preprocessing.augment")
    with pytest.raises(ParameterError, match="mosaic_tiles"):
        parse_params(AugmentConfig, {"mosaic_tiles": 6}, "preprocessing.augment")
    with pytest.raises(ParameterError, match=r"preprocessing\.augment\.flip_lr"):
        parse_params(AugmentConfig, {"flip_lr": 0.5}, "preprocessing.augment")
