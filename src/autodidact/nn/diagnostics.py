"""Label-free and probe measures of a representation, shared by every figure and report that
scores one."""

import numpy as np
import torch


def rankme(z, eps=1e-7):
    """RankMe (Garrido et al. 2023), the effective rank of embeddings z [N, d]: exp of the entropy
    of the normalized singular values, p_k = s_k / sum(s) + eps. Between 1 (collapse to a line or
    a point) and min(N, d) (every direction used alike)."""
    s = torch.linalg.svdvals(z.detach().float())
    p = s / s.sum().clamp_min(1e-12) + eps
    return torch.exp(-(p * torch.log(p)).sum())


def linear_probe_r2(x_fit, y_fit, x_eval, y_eval, ridge=1e-3):
    """R^2 on (x_eval, y_eval) of the affine map fitted on (x_fit, y_fit) by least squares with a
    small ridge penalty (quantized latents are often rank-deficient: a code unseen in the fit half
    must not get an arbitrary weight). One score over every target dimension: 1 - SSE / SST."""
    mean, std = x_fit.mean(0), x_fit.std(0) + 1e-8
    a, b = (x_fit - mean) / std, (x_eval - mean) / std
    w = np.linalg.solve(a.T @ a + ridge * len(a) * np.eye(a.shape[1]), a.T @ (y_fit - y_fit.mean(0)))
    residual = ((b @ w + y_fit.mean(0) - y_eval) ** 2).sum()
    return float(1.0 - residual / max(((y_eval - y_eval.mean(0)) ** 2).sum(), 1e-12))
