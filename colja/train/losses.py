"""Training scores and losses for ColBERT.

Scores are raw MaxSim, exactly as at search time: Σ over *all* query vectors
(the ``[MASK]`` expansion included) of the max dot product over the kept
document vectors (``doc_mask``: punctuation and padding dropped).

* :func:`contrastive_loss` — cross-entropy over [positive, hard negatives]
  (and, with in-batch negatives, every other document of the batch), logits =
  score / temperature. With raw scores summed over 32 query vectors a
  temperature of 1 is what Stanford ColBERT trains with (logits span ±32).
* :func:`distillation_loss` — KL(teacher ‖ student) over each query's group, on
  per-query min-max normalised scores (the JaColBERTv2.5 recipe).

Normalisation choice: PyLate's ``Distillation`` min-max normalises the student
only and expects the teacher already normalised (JaColBERTv2.4 trained on a
pre-normalised triples file). colja normalises **both** by default: for a
pre-normalised teacher this is a no-op, and raw teacher scores of any scale
(cosine similarities, cross-encoder logits) then work as they are.
``normalize="student"`` reproduces PyLate exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from colja.train.arguments import NORMALIZE_CHOICES


def maxsim_pairwise(Q: torch.Tensor, D: torch.Tensor, d_mask: torch.Tensor, q_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scores of every query against every document: float ``[B, N]``.

    ``Q``: ``[B, Lq, dim]``; ``D``: ``[N, Ld, dim]``; ``d_mask``: bool ``[N, Ld]``
    (True = keep); ``q_mask``: optional bool ``[B, Lq]`` (False rows add 0).
    Every document must keep at least one vector.
    """
    sims = torch.einsum("bqd,ntd->bnqt", Q, D)
    sims = sims.masked_fill(~d_mask[None, :, None, :], torch.finfo(sims.dtype).min)
    best = sims.max(dim=3).values  # [B, N, Lq]
    if q_mask is not None:
        best = best * q_mask[:, None, :].to(best.dtype)
    return best.sum(dim=2)


def maxsim_grouped(Q: torch.Tensor, D: torch.Tensor, d_mask: torch.Tensor, q_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scores of query ``i`` against its own group of documents: float ``[B, nway]``.

    ``D``: ``[B * nway, Ld, dim]`` with query ``i``'s documents at rows
    ``i*nway … i*nway + nway - 1``; masks as in :func:`maxsim_pairwise`.
    """
    B = Q.shape[0]
    if D.shape[0] % B:
        raise ValueError(f"{D.shape[0]} documents cannot be split into groups for {B} queries")
    nway = D.shape[0] // B
    Dg = D.reshape(B, nway, *D.shape[1:])
    mask = d_mask.reshape(B, nway, -1)
    sims = torch.einsum("bqd,bntd->bnqt", Q, Dg)
    sims = sims.masked_fill(~mask[:, :, None, :], torch.finfo(sims.dtype).min)
    best = sims.max(dim=3).values
    if q_mask is not None:
        best = best * q_mask[:, None, :].to(best.dtype)
    return best.sum(dim=2)


def contrastive_loss(scores: torch.Tensor, targets: torch.Tensor | int = 0, *, temperature: float = 1.0) -> torch.Tensor:
    """Mean cross-entropy of ``scores / temperature`` (``[B, N]``) with the positive at ``targets``.

    ``targets`` is a column index per query (long ``[B]``) or one index for all.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if isinstance(targets, int):
        targets = torch.full((scores.shape[0],), targets, dtype=torch.long, device=scores.device)
    return F.cross_entropy(scores.float() / temperature, targets)


def minmax_normalize(scores: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-row min-max scaling to [0, 1]: ``(s - min) / (max - min + eps)``."""
    lo = scores.min(dim=1, keepdim=True).values
    hi = scores.max(dim=1, keepdim=True).values
    return (scores - lo) / (hi - lo + eps)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, *, normalize: str = "both",
                      temperature: float = 1.0) -> torch.Tensor:
    """KL(softmax(teacher) ‖ softmax(student)), averaged over queries (``batchmean``).

    ``student``, ``teacher``: ``[B, nway]`` scores of the same documents.
    ``normalize``: which side gets per-query min-max normalisation, one of
    ``NORMALIZE_CHOICES``; both sides are then divided by ``temperature``.
    """
    if normalize not in NORMALIZE_CHOICES:
        raise ValueError(f"normalize must be one of {NORMALIZE_CHOICES}, got {normalize!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if student.shape != teacher.shape:
        raise ValueError(f"student scores {tuple(student.shape)} and teacher scores {tuple(teacher.shape)} differ in shape")
    student = student.float()
    teacher = teacher.float().to(student.device)
    if normalize in ("both", "student"):
        student = minmax_normalize(student)
    if normalize in ("both", "teacher"):
        teacher = minmax_normalize(teacher)
    log_p_student = F.log_softmax(student / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
