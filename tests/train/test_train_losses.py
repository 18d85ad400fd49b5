"""Training scores and losses on hand-built cases (values worked out by hand in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from colja import kernels
from colja.train.losses import (contrastive_loss, distillation_loss, maxsim_grouped, maxsim_pairwise,
                                minmax_normalize)
from tests.oracle import maxsim_matrix

# Two query vectors in 2-d: q1 = x, q2 = y.
Q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
# Doc A: x, (0.6, 0.8) and a masked y (padding or punctuation). Doc B: (0.8, 0.6), (0.6, -0.8), masked y.
D = torch.tensor([[[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]],
                  [[0.8, 0.6], [0.6, -0.8], [0.0, 1.0]]])
KEEP = torch.tensor([[True, True, False], [True, True, False]])


def softmax(xs):
    z = sum(math.exp(x) for x in xs)
    return [math.exp(x) / z for x in xs]


def test_maxsim_ignores_masked_doc_tokens():
    # A: q1 -> max(1, 0.6) = 1, q2 -> max(0, 0.8) = 0.8 (the masked y would give 1): 1.8
    # B: q1 -> max(0.8, 0.6) = 0.8, q2 -> max(0.6, -0.8) = 0.6: 1.4
    scores = maxsim_pairwise(Q, D, KEEP)
    torch.testing.assert_close(scores, torch.tensor([[1.8, 1.4]]))
    unmasked = maxsim_pairwise(Q, D, torch.ones_like(KEEP))
    torch.testing.assert_close(unmasked, torch.tensor([[2.0, 1.8]]))


def test_maxsim_query_mask_drops_rows():
    scores = maxsim_pairwise(Q, D, KEEP, q_mask=torch.tensor([[True, False]]))
    torch.testing.assert_close(scores, torch.tensor([[1.0, 0.8]]))


def test_grouped_equals_the_diagonal_blocks_of_pairwise():
    g = torch.Generator().manual_seed(0)
    Qr = torch.nn.functional.normalize(torch.randn(3, 5, 8, generator=g), dim=2)
    Dr = torch.nn.functional.normalize(torch.randn(6, 7, 8, generator=g), dim=2)
    keep = torch.rand(6, 7, generator=g) > 0.3
    keep[:, 0] = True
    full = maxsim_pairwise(Qr, Dr, keep)
    grouped = maxsim_grouped(Qr, Dr, keep)
    torch.testing.assert_close(grouped, torch.stack([full[i, 2 * i : 2 * i + 2] for i in range(3)]))
    with pytest.raises(ValueError, match="groups"):
        maxsim_grouped(Qr, Dr[:5], keep[:5])


def test_training_scores_equal_the_oracle_and_the_search_kernel():
    """The differentiable training score is the MaxSim search uses: same numbers as the
    readable oracle and as the exact kernel, padding masks included."""
    g = torch.Generator().manual_seed(1)
    Qr = torch.nn.functional.normalize(torch.randn(4, 6, 16, generator=g), dim=2)
    Qr[1, 4:] = 0  # dynamic-length padding rows: a zero query vector scores 0 everywhere
    Dr = torch.nn.functional.normalize(torch.randn(5, 9, 16, generator=g), dim=2)
    keep = torch.rand(5, 9, generator=g) > 0.4
    keep[:, 0] = True
    kept = [Dr[j][keep[j]] for j in range(5)]
    oracle = maxsim_matrix(Qr, kept)
    torch.testing.assert_close(maxsim_pairwise(Qr, Dr, keep), oracle)
    flat = torch.cat(kept)
    offsets = kernels.lengths_to_offsets([d.shape[0] for d in kept])
    torch.testing.assert_close(kernels.maxsim_dense_queries(Qr, flat, offsets), oracle, rtol=1e-5, atol=1e-5)


def test_contrastive_loss_by_hand():
    scores = maxsim_pairwise(Q, D, KEEP)  # [[1.8, 1.4]]
    # -log(e^1.8 / (e^1.8 + e^1.4)) = log(1 + e^-0.4)
    assert contrastive_loss(scores).item() == pytest.approx(math.log(1 + math.exp(-0.4)), abs=1e-6)
    # temperature 0.5 doubles the logits: log(1 + e^-0.8)
    assert contrastive_loss(scores, temperature=0.5).item() == pytest.approx(math.log(1 + math.exp(-0.8)), abs=1e-6)
    # the positive in column 1 instead: log(1 + e^0.4)
    assert contrastive_loss(scores, 1).item() == pytest.approx(math.log(1 + math.exp(0.4)), abs=1e-6)


def test_in_batch_contrastive_targets():
    # 2 queries x 4 docs (nway 2): query 0's positive is column 0, query 1's is column 2.
    scores = torch.tensor([[3.0, 1.0, 2.0, 0.0], [0.0, 1.0, 2.0, 2.0]])
    targets = torch.tensor([0, 2])
    row0 = -math.log(softmax([3, 1, 2, 0])[0])
    row1 = -math.log(softmax([0, 1, 2, 2])[2])
    assert contrastive_loss(scores, targets).item() == pytest.approx((row0 + row1) / 2, abs=1e-6)


def test_contrastive_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        contrastive_loss(torch.zeros(1, 2), temperature=0)


def test_minmax_normalize():
    out = minmax_normalize(torch.tensor([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]]))
    torch.testing.assert_close(out, torch.tensor([[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]]), atol=1e-6, rtol=0)


def kl(p, q):
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))


def test_distillation_by_hand():
    student = torch.tensor([[1.0, 3.0, 2.0]])   # min-max -> [0, 1, 0.5]
    teacher = torch.tensor([[10.0, 30.0, 30.0]])  # min-max -> [0, 1, 1]
    expected = kl(softmax([0, 1, 1]), softmax([0, 1, 0.5]))
    assert distillation_loss(student, teacher).item() == pytest.approx(expected, abs=1e-6)
    # PyLate's default: only the student is normalised, the teacher is used as given.
    teacher_small = torch.tensor([[0.0, 2.0, 2.0]])
    expected_student = kl(softmax([0, 2, 2]), softmax([0, 1, 0.5]))
    assert distillation_loss(student, teacher_small, normalize="student").item() == pytest.approx(expected_student, abs=1e-6)
    # no normalisation, temperature 2: softmax of halved raw scores
    expected_none = kl(softmax([0, 1, 1]), softmax([0.5, 1.5, 1.0]))
    assert distillation_loss(student, teacher_small, normalize="none", temperature=2.0).item() == pytest.approx(expected_none, abs=1e-6)


def test_distillation_is_zero_for_proportional_scores_and_averages_over_queries():
    student = torch.tensor([[1.0, 3.0, 2.0], [0.0, 1.0, 4.0]])
    assert distillation_loss(student, student * 7 + 3).item() == pytest.approx(0.0, abs=1e-7)
    teacher = torch.tensor([[1.0, 3.0, 2.0], [4.0, 1.0, 0.0]])
    row1 = kl(softmax([1, 0.25, 0]), softmax([0, 0.25, 1]))
    assert distillation_loss(student, teacher).item() == pytest.approx(row1 / 2, abs=1e-6)


def test_distillation_checks():
    with pytest.raises(ValueError, match="normalize"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), normalize="zscore")
    with pytest.raises(ValueError, match="shape"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 3))


def test_gradients_flow_and_stay_finite_through_masks():
    Qp = Q.clone().requires_grad_(True)
    Dp = D.clone().requires_grad_(True)
    loss = contrastive_loss(maxsim_pairwise(Qp, Dp, KEEP)) + distillation_loss(
        maxsim_grouped(Qp, Dp, KEEP), torch.tensor([[1.0, 0.0]]))
    loss.backward()
    assert torch.isfinite(Qp.grad).all() and torch.isfinite(Dp.grad).all()
    assert Dp.grad[:, 2].abs().sum() == 0  # masked vectors get no gradient
