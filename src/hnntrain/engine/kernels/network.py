"""Forward and backward pass of the MLP at batch 1, in numba (the fused engine's step).

The same equations as :meth:`hnntrain.engine.model.MLP.step` for one sample shared by E
replicas, with weights (in, E, out) read from the arrays, float32 throughout:

    a_1 = sum_{r in rows} x_r W_1[r]          (only the active input rows)
    h_l = f(a_l) (+ bias input 1),  a_{l+1} = h_l W_{l+1}
    p = softmax(a_L),  loss = -log p_y,  delta_L = p - onehot(y)
    request_l[i] = -lr * h_{l-1}[i] * delta_l,  delta_{l-1} = (W_l[:n] delta_l) * f'(h_{l-1})

Requests are the reference's bit for bit given the same activations; the sums of the forward and
backward pass run in another order than torch's matrix products, so activations agree to float
rounding.
"""

from __future__ import annotations

import math

import numba
import numpy as np

SIGMOID, TANH, RELU = 0, 1, 2
ACTIVATION_KINDS = {"sigmoid": SIGMOID, "tanh": TANH, "relu": RELU}


@numba.njit(cache=True, error_model="numpy")
def first_forward(x, rows, w, a):
    """a (E, out) = sum over the active rows r of x[r] * w[r] (w: (in, E, out))."""
    a[:] = 0
    for r in rows:
        xv = x[r]
        for e in range(w.shape[1]):
            for j in range(w.shape[2]):
                a[e, j] += xv * w[r, e, j]


@numba.njit(cache=True, error_model="numpy")
def activate(a, kind, h):
    """h[:, :n] = f(a); a trailing column of h (the bias input) is set to 1."""
    n = a.shape[1]
    for e in range(a.shape[0]):
        for i in range(n):
            v = a[e, i]
            if kind == SIGMOID:
                h[e, i] = np.float32(1.0) / (np.float32(1.0) + np.float32(math.exp(-v)))
            elif kind == TANH:
                h[e, i] = np.float32(math.tanh(v))
            else:
                h[e, i] = max(v, np.float32(0.0))
        if h.shape[1] > n:
            h[e, n] = 1.0


@numba.njit(cache=True, error_model="numpy")
def dense_forward(h, w, a):
    """a (E, out) = h[e] @ w[:, e] per replica (h: (E, in), w: (in, E, out))."""
    a[:] = 0
    for i in range(w.shape[0]):
        for e in range(w.shape[1]):
            hv = h[e, i]
            for k in range(w.shape[2]):
                a[e, k] += hv * w[i, e, k]


@numba.njit(cache=True, error_model="numpy")
def softmax_delta(a, label, delta, loss):
    """delta = softmax(a) - onehot(label), loss = -log softmax(a)[label], per replica."""
    for e in range(a.shape[0]):
        top = a[e, 0]
        for k in range(a.shape[1]):
            top = max(top, a[e, k])
        total = np.float32(0.0)
        for k in range(a.shape[1]):
            total += np.float32(math.exp(a[e, k] - top))
        log_total = np.float32(math.log(total))
        for k in range(a.shape[1]):
            delta[e, k] = np.float32(math.exp(a[e, k] - top - log_total))
        loss[e] = -(a[e, label] - top - log_total)
        delta[e, label] -= 1.0


@numba.njit(cache=True, error_model="numpy")
def dense_backward(h_in, delta, w, n_hidden, kind, neg_lr, request, delta_in):
    """request[i, e, k] = h_in[e, i] delta[e, k] * (-lr); delta_in[e, i] = (w[i, e] . delta[e]) f'(h_in[e, i])."""
    for i in range(w.shape[0]):
        for e in range(w.shape[1]):
            hv = h_in[e, i]
            back = np.float32(0.0)
            for k in range(w.shape[2]):
                request[i, e, k] = hv * delta[e, k] * neg_lr
                back += delta[e, k] * w[i, e, k]
            if i < n_hidden:
                if kind == SIGMOID:
                    grad = hv * (np.float32(1.0) - hv)
                elif kind == TANH:
                    grad = np.float32(1.0) - hv * hv
                else:
                    grad = np.float32(1.0) if hv > 0 else np.float32(0.0)
                delta_in[e, i] = back * grad


@numba.njit(cache=True, error_model="numpy")
def first_request(x, rows, delta, neg_lr, request):
    """request[a, e, j] = x[rows[a]] delta[e, j] * (-lr)."""
    for a in range(rows.size):
        xv = x[rows[a]]
        for e in range(delta.shape[0]):
            for j in range(delta.shape[1]):
                request[a, e, j] = xv * delta[e, j] * neg_lr


@numba.njit(cache=True, error_model="numpy")
def add_requests(total, request, rows):
    """total[rows[a]] += request[a] in float64 (the update-noise request sum)."""
    for a in range(rows.size):
        r = rows[a]
        for e in range(request.shape[1]):
            for j in range(request.shape[2]):
                total[r, e, j] += np.float64(request[a, e, j])


def forward_backward(mlp, activation: str, weights: list[np.ndarray], x: np.ndarray, rows: np.ndarray,
                     label: int, lr: float):
    """Requests (one (k, E, out) float32 array per layer; layer 0 at ``rows``) and the loss (E,)."""
    kind = ACTIVATION_KINDS[activation]
    replicas = weights[0].shape[1]
    a = np.empty((replicas, weights[0].shape[2]), np.float32)
    first_forward(x, rows, weights[0], a)
    hidden = []
    for w in weights[1:]:
        h = np.empty((replicas, w.shape[0]), np.float32)
        activate(a, kind, h)
        hidden.append(h)
        a = np.empty((replicas, w.shape[2]), np.float32)
        dense_forward(h, w, a)
    delta = np.empty_like(a)
    loss = np.empty(replicas, np.float32)
    softmax_delta(a, label, delta, loss)
    neg_lr = np.float32(-lr)
    requests: list[np.ndarray] = [None] * len(weights)  # type: ignore[list-item]
    for layer in range(len(weights) - 1, 0, -1):
        w = weights[layer]
        request = np.empty(w.shape, np.float32)
        delta_in = np.empty((replicas, mlp.sizes[layer]), np.float32)
        dense_backward(hidden[layer - 1], delta, w, mlp.sizes[layer], kind, neg_lr, request, delta_in)
        requests[layer] = request
        delta = delta_in
    request = np.empty((rows.size, replicas, weights[0].shape[2]), np.float32)
    first_request(x, rows, delta, neg_lr, request)
    requests[0] = request
    return requests, loss
