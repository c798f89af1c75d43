import pytest
import torch

from hnntrain.engine.model import MLP


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("hidden", [[7], [6, 5]])
def test_manual_backprop_matches_autograd(activation, hidden):
    torch.manual_seed(0)
    sizes = [9, *hidden, 4]
    mlp = MLP(sizes, activation, bias=True)
    replicas, batch, lr = 3, 5, 0.2
    weights = [torch.randn(i, replicas, o, dtype=torch.float64) * 0.5 for i, o in mlp.weight_shapes()]
    x = torch.cat((torch.rand(batch, 9, dtype=torch.float64), torch.ones(batch, 1, dtype=torch.float64)), 1)
    y = torch.randint(0, 4, (batch,))
    step = mlp.step(weights, x, y, lr, None)

    leaves = [w.clone().requires_grad_() for w in weights]
    logits = mlp.logits(leaves, x)  # (E, B, C)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 4), y.repeat(replicas), reduction="none")
    (loss.view(replicas, batch).mean(1).sum()).backward()
    for request, leaf in zip(step.requests, leaves):
        assert torch.allclose(request, -lr * leaf.grad, atol=1e-12)
    assert torch.allclose(step.loss, loss.view(replicas, batch).sum(1).detach())


def test_first_layer_request_on_selected_inputs():
    mlp = MLP([6, 4, 3], "sigmoid", bias=True)
    weights = [torch.randn(i, 2, o) for i, o in mlp.weight_shapes()]
    x = torch.tensor([[0.0, 0.5, 0.0, 0.0, 1.0, 0.0, 1.0]])
    rows = torch.tensor([1, 4, 6])
    full = mlp.step(weights, x, torch.tensor([2]), 0.1, None).requests[0]
    part = mlp.step(weights, x, torch.tensor([2]), 0.1, rows).requests[0]
    assert torch.allclose(full[rows], part)
    assert torch.count_nonzero(full[[0, 2, 3, 5]]) == 0  # zero inputs ask for nothing
