"""The Machine Interpretability Score's decision rule (Zimmermann, Klindt & Brendel, NeurIPS 2024)
on unit-norm embeddings, and the fit of its slope alpha to people's answers (numpy, scipy).

For queries q+ and q- and explanation sets E+ and E-: s(q, E) = mean over E of sim(q, e),
delta = [s(q+, E+) - s(q+, E-)] - [s(q-, E+) - s(q-, E-)], p(correct) = sigmoid(alpha * delta).
sim is the cosine similarity of the backbone's embeddings (for DreamSim: 1 - its distance).
With more than two options each option's evidence e(q) = s(q, E+) - s(q, E-) and
p(q) = softmax(alpha * e)(q), which for two options is the sigmoid above.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, logsumexp, softmax

# MIS with DreamSim: the default reported by Zimmermann, Klindt and Brendel (2024)
DREAMSIM_ALPHA = 0.16


def set_similarity(query: np.ndarray, explanations: np.ndarray) -> float:
    """s(q, E): the mean cosine similarity of a unit-norm query to unit-norm explanations."""
    if len(explanations) == 0:
        return 0.0
    return float(np.mean(explanations @ query))


def mis_delta(q_pos: np.ndarray, q_neg: np.ndarray, e_pos: np.ndarray, e_neg: np.ndarray
              ) -> float:
    """delta = [s(q+,E+) - s(q+,E-)] - [s(q-,E+) - s(q-,E-)] (> 0: the rule picks q+)."""
    return ((set_similarity(q_pos, e_pos) - set_similarity(q_pos, e_neg))
            - (set_similarity(q_neg, e_pos) - set_similarity(q_neg, e_neg)))


def p_choose(delta: float | np.ndarray, alpha: float | None) -> float | np.ndarray:
    """P(the rule picks the option delta favours): sigmoid(alpha * delta), or with alpha None
    the hard decision (1 when delta > 0, 0 when < 0, 0.5 on a tie)."""
    delta = np.asarray(delta, dtype=float)
    if alpha is None:
        out = np.where(delta > 0, 1.0, np.where(delta < 0, 0.0, 0.5))
    else:
        out = expit(alpha * delta)
    return float(out) if out.ndim == 0 else out


def choice_probabilities(evidence: np.ndarray, alpha: float | None) -> np.ndarray:
    """Each option's probability: softmax(alpha * evidence), or with alpha None the hard
    decision (the options of the largest evidence share 1)."""
    evidence = np.asarray(evidence, dtype=float)
    if alpha is None:
        best = evidence == evidence.max()
        return best / best.sum()
    return softmax(alpha * evidence)


def fit_alpha(delta: np.ndarray, correct: np.ndarray, bounds: tuple[float, float] = (0.0, 1e4)
              ) -> float:
    """The alpha that maximises the likelihood of people's correct/wrong answers given each
    trial's delta (computed for the correct option), as the paper calibrated it on IMI's data.
    With more than two options `delta` has a row per trial: the right option's evidence first,
    then the others' (p(correct) = softmax(alpha * row)[0])."""
    delta = np.asarray(delta, dtype=float)
    y = np.asarray(correct, dtype=float)
    if len(delta) == 0 or not np.any(delta - (delta[:, :1] if delta.ndim == 2 else 0)):
        raise ValueError("cannot fit alpha: no trials with a non-zero similarity difference")
    rows = delta if delta.ndim == 2 else np.stack([delta, np.zeros_like(delta)], axis=1)

    def negative_log_likelihood(alpha: float) -> float:
        z = alpha * rows
        total = logsumexp(z, axis=1)
        log_right = z[:, 0] - total
        log_wrong = logsumexp(z[:, 1:], axis=1) - total
        return -float(np.sum(y * log_right + (1 - y) * log_wrong))

    return float(minimize_scalar(negative_log_likelihood, bounds=bounds, method="bounded",
                                 options={"xatol": 1e-6}).x)
