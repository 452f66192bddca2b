"""Task-aligned assigner on hand-built cases (yolo_mlops.yolo.train.assigner)."""

from __future__ import annotations

import torch

from yolo_mlops.yolo.train.assigner import TaskAlignedAssigner, anchors_inside_boxes

STRIDE = 8
GRID = 8  # 64 × 64 image, one level, 64 anchors at cell centres (4, 12, ..., 60)


def grid_anchors() -> torch.Tensor:
    """``[64, 2]`` anchor centres in pixels, row-major (y outer, x inner)."""
    centres = torch.arange(GRID, dtype=torch.float32) * STRIDE + STRIDE / 2
    grid_y, grid_x = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack((grid_x, grid_y), -1).view(-1, 2)


def predictions(
    batch: int, num_classes: int, box: list[float], score: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every anchor predicts the same ``box`` with probability ``score`` for every class."""
    num_anchors = GRID * GRID
    scores = torch.full((batch, num_anchors, num_classes), score)
    bboxes = torch.tensor(box).expand(batch, num_anchors, 4).clone()
    return scores, bboxes


def inside(anchors: torch.Tensor, box: list[float]) -> torch.Tensor:
    x, y = anchors[:, 0], anchors[:, 1]
    return (x > box[0]) & (x < box[2]) & (y > box[1]) & (y < box[3])


def test_anchor_centres_must_be_strictly_inside_the_box() -> None:
    anchors = torch.tensor([[4.0, 4.0], [12.0, 12.0], [20.0, 12.0], [30.0, 30.0]])
    gt = torch.tensor([[[4.0, 4.0, 20.0, 20.0]]])  # (4,4) and (20,12) lie on the edges
    assert anchors_inside_boxes(anchors, gt).tolist() == [[[False, True, False, False]]]


def test_gt_gets_only_the_best_aligned_anchors_inside_it() -> None:
    anchors = grid_anchors()
    gt_box = [0.0, 0.0, 44.0, 44.0]  # 5 × 5 = 25 anchor centres inside
    scores, bboxes = predictions(1, 3, gt_box)
    # Class-1 score grows with the anchor index, so inside the box the best-aligned anchors are
    # the ones with the largest index; anchors outside the box score even higher but must lose.
    scores[0, :, 1] = torch.linspace(0.01, 0.99, GRID * GRID)
    assigner = TaskAlignedAssigner(num_classes=3, topk=10)
    result = assigner(
        scores,
        bboxes,
        anchors,
        torch.tensor([[1]]),
        torch.tensor([[gt_box]]),
        torch.tensor([[True]]),
    )
    in_box = inside(anchors, gt_box)
    assert int(in_box.sum()) == 25
    fg = result.fg_mask[0]
    assert int(fg.sum()) == 10
    assert not bool((fg & ~in_box).any())
    expected = in_box.nonzero().flatten()[-10:]  # the 10 highest class-1 scores inside the box
    assert fg.nonzero().flatten().tolist() == expected.tolist()
    assert (result.labels[0][fg] == 1).all()
    assert (result.labels[0][~fg] == 3).all()  # background label = num_classes
    assert torch.allclose(result.bboxes[0][fg], torch.tensor(gt_box).expand(10, 4))
    assert (result.bboxes[0][~fg] == 0).all()


def test_target_scores_are_one_hot_and_normalised_to_the_best_overlap() -> None:
    anchors = grid_anchors()
    gt_box = [0.0, 0.0, 44.0, 44.0]
    scores, bboxes = predictions(1, 3, gt_box)  # perfect boxes: overlap 1 everywhere
    scores[0, :, 2] = torch.linspace(0.01, 0.99, GRID * GRID)
    result = TaskAlignedAssigner(num_classes=3, topk=10)(
        scores,
        bboxes,
        anchors,
        torch.tensor([[2]]),
        torch.tensor([[gt_box]]),
        torch.tensor([[True]]),
    )
    fg = result.fg_mask[0]
    target = result.scores[0]
    assert (target[:, :2] == 0).all()
    assert (target[~fg] == 0).all()
    # The best-aligned positive gets the GT's max overlap (1.0); the others are scaled by
    # (score / best score) ** alpha, so they lie in (0, 1].
    assert torch.isclose(target[:, 2].max(), torch.tensor(1.0), atol=1e-5)
    assert (target[fg, 2] > 0).all()
    fg_scores = scores[0, fg, 2]
    assert torch.allclose(target[fg, 2], (fg_scores / fg_scores.max()).sqrt(), atol=1e-5)


def test_shared_anchor_goes_to_the_gt_it_overlaps_most() -> None:
    anchors = grid_anchors()
    box_a = [0.0, 0.0, 40.0, 40.0]
    box_b = [16.0, 16.0, 56.0, 56.0]
    shared = inside(anchors, box_a) & inside(anchors, box_b)
    assert int(shared.sum()) == 9
    gt_boxes = torch.tensor([[box_a, box_b]])
    gt_labels = torch.tensor([[0, 1]])
    mask_gt = torch.tensor([[True, True]])
    assigner = TaskAlignedAssigner(num_classes=2, topk=64)  # every candidate makes the top-k

    for predicted, winner in ((box_b, 1), (box_a, 0)):
        scores, bboxes = predictions(1, 2, predicted)
        result = assigner(scores, bboxes, anchors, gt_labels, gt_boxes, mask_gt)
        fg = result.fg_mask[0]
        assert fg[shared].all()
        assert (result.gt_index[0][shared] == winner).all()
        assert (result.labels[0][shared] == winner).all()
        assert torch.allclose(result.bboxes[0][shared], gt_boxes[0, winner].expand(9, 4))
        # Each anchor ends up with exactly one class target.
        assert ((result.scores[0] > 0).sum(-1) <= 1).all()
        # Anchors inside only one box stay with that box.
        only_a = inside(anchors, box_a) & ~shared
        assert (result.gt_index[0][only_a & fg] == 0).all()


def test_no_gt_means_all_background() -> None:
    anchors = grid_anchors()
    scores, bboxes = predictions(2, 4, [0.0, 0.0, 30.0, 30.0])
    assigner = TaskAlignedAssigner(num_classes=4)
    empty = assigner(
        scores,
        bboxes,
        anchors,
        torch.zeros((2, 0), dtype=torch.long),
        torch.zeros((2, 0, 4)),
        torch.zeros((2, 0), dtype=torch.bool),
    )
    padded_only = assigner(
        scores,
        bboxes,
        anchors,
        torch.zeros((2, 3), dtype=torch.long),
        torch.tensor([0.0, 0.0, 30.0, 30.0]).expand(2, 3, 4),
        torch.zeros((2, 3), dtype=torch.bool),  # rows present but all marked as padding
    )
    for result in (empty, padded_only):
        assert not result.fg_mask.any()
        assert result.scores.shape == (2, 64, 4)
        assert (result.scores == 0).all()
        assert (result.labels == 4).all()
        assert (result.bboxes == 0).all()


def test_padding_rows_are_ignored_and_batch_equals_per_image() -> None:
    generator = torch.Generator().manual_seed(0)
    anchors = grid_anchors()
    num_classes = 3
    scores = torch.rand((2, 64, num_classes), generator=generator)
    centres = torch.rand((2, 64, 2), generator=generator) * 64
    sizes = torch.rand((2, 64, 2), generator=generator) * 30 + 5
    bboxes = torch.cat((centres - sizes / 2, centres + sizes / 2), -1)
    gt_boxes = torch.tensor(
        [
            [[2.0, 3.0, 40.0, 30.0], [20.0, 10.0, 60.0, 62.0], [0.0, 0.0, 0.0, 0.0]],
            [[5.0, 5.0, 50.0, 50.0], [99.0, 99.0, 120.0, 120.0], [1.0, 1.0, 63.0, 63.0]],
        ]
    )
    gt_labels = torch.tensor([[0, 2, 0], [1, 2, 2]])
    mask_gt = torch.tensor([[True, True, False], [True, False, False]])
    assigner = TaskAlignedAssigner(num_classes=num_classes)
    batched = assigner(scores, bboxes, anchors, gt_labels, gt_boxes, mask_gt)
    for image, num_real in ((0, 2), (1, 1)):
        single = assigner(
            scores[image : image + 1],
            bboxes[image : image + 1],
            anchors,
            gt_labels[image : image + 1, :num_real],
            gt_boxes[image : image + 1, :num_real],
            mask_gt[image : image + 1, :num_real],
        )
        assert torch.equal(batched.fg_mask[image], single.fg_mask[0])
        assert torch.equal(batched.labels[image], single.labels[0])
        assert torch.allclose(batched.scores[image], single.scores[0])
        assert torch.allclose(batched.bboxes[image], single.bboxes[0])
    # Image 1's padding rows (boxes 1 and 2, one covering the whole image) claim nothing.
    assert (batched.gt_index[1][batched.fg_mask[1]] == 0).all()
    assert int(batched.fg_mask.sum(-1).max()) <= 2 * 10


def test_small_gt_without_anchor_centres_gets_no_positives_under_the_830_rule() -> None:
    anchors = grid_anchors()
    gt_box = [5.0, 5.0, 11.0, 11.0]  # lies between anchor centres 4 and 12
    scores, bboxes = predictions(1, 1, gt_box)
    result = TaskAlignedAssigner(num_classes=1)(
        scores,
        bboxes,
        anchors,
        torch.tensor([[0]]),
        torch.tensor([[gt_box]]),
        torch.tensor([[True]]),
    )
    assert not result.fg_mask.any()
    assert (result.scores == 0).all()


def test_small_gt_widened_for_candidates_gets_the_anchors_nearest_its_centre() -> None:
    anchors = grid_anchors()
    gt_box = [5.0, 5.0, 11.0, 11.0]  # 6 px wide: no anchor centre inside; centre (8, 8)
    scores, bboxes = predictions(1, 1, gt_box)
    result = TaskAlignedAssigner(num_classes=1, min_candidate_side=16.0)(
        scores,
        bboxes,
        anchors,
        torch.tensor([[0]]),
        torch.tensor([[gt_box]]),
        torch.tensor([[True]]),
    )
    positives = anchors[result.fg_mask[0]]
    assert len(positives) > 0
    # Only anchors inside the widened 16 x 16 box [0, 16] x [0, 16] qualify.
    assert ((positives > 0) & (positives < 16)).all()
    # The regression target stays the real (small) box.
    assert torch.allclose(result.bboxes[0][result.fg_mask[0]], torch.tensor(gt_box))


def test_widen_small_boxes_keeps_the_centre_and_leaves_large_sides_alone() -> None:
    from yolo_mlops.yolo.train.assigner import widen_small_boxes

    boxes = torch.tensor([[5.0, 5.0, 11.0, 11.0], [0.0, 10.0, 40.0, 14.0]])
    widened = widen_small_boxes(boxes, 16.0)
    assert torch.allclose(widened[0], torch.tensor([0.0, 0.0, 16.0, 16.0]))
    assert torch.allclose(widened[1], torch.tensor([0.0, 4.0, 40.0, 20.0]))
