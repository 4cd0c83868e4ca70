import pytest
import torch
import torch.nn.functional as F

from mvr3d.models.mvr.loss import global_cosine_hard_mining
from mvr3d.models.mvr.optim import stable_adamw, warm_cosine
from mvr3d.models.mvr.student import LinearAttention, Student, StudentConfig, fuse_groups


def test_student_shapes_and_order():
    torch.manual_seed(0)
    student = Student(StudentConfig(embed_dim=32, num_heads=2)).eval()
    outputs = student(torch.randn(3, 16, 32))
    assert len(outputs) == 8 and all(o.shape == (3, 16, 32) for o in outputs)
    groups = fuse_groups(outputs, ((0, 1, 2, 3), (4, 5, 6, 7)))
    assert torch.allclose(groups[0], torch.stack(outputs[:4]).mean(0))


def test_dropout_only_in_training():
    torch.manual_seed(0)
    student = Student(StudentConfig(embed_dim=32, num_heads=2, dropout=0.5))
    x = torch.randn(2, 4, 32)
    student.eval()
    assert torch.equal(student(x)[0], student(x)[0])
    student.train()
    assert not torch.equal(student(x)[0], student(x)[0])


def test_linear_attention_is_permutation_equivariant():
    torch.manual_seed(0)
    attention = LinearAttention(16, 2)
    x = torch.randn(1, 10, 16)
    perm = torch.randperm(10)
    assert torch.allclose(attention(x)[:, perm], attention(x[:, perm]), atol=1e-5)


def test_hard_mining_scales_easy_gradients():
    torch.manual_seed(0)
    target = [torch.randn(2, 50, 8)]
    base = target[0] + 0.5 * torch.randn(2, 50, 8)

    def grads(easy_fraction):
        output = base.clone().requires_grad_(True)
        global_cosine_hard_mining(target, [output * 1.0], easy_fraction, 0.1).backward()
        return output.grad

    plain, mined = grads(0.0), grads(0.9)
    distance = 1 - F.cosine_similarity(target[0], base, dim=-1)
    hard = distance >= torch.topk(distance.flatten(), 10).values[-1]
    assert torch.allclose(mined[hard], plain[hard], rtol=1e-4, atol=1e-9)
    assert torch.allclose(mined[~hard], 0.1 * plain[~hard], rtol=1e-4, atol=1e-9)
    assert hard.sum() == 10


def test_loss_is_zero_for_perfect_reconstruction():
    x = [torch.randn(2, 16, 8), torch.randn(2, 16, 8)]
    assert global_cosine_hard_mining(x, [t.clone() for t in x]).item() == pytest.approx(0, abs=1e-6)


def test_warm_cosine_schedule():
    assert warm_cosine(0, 100, 10, 0.1) == pytest.approx(0.1)
    assert warm_cosine(9, 100, 10, 0.1) == pytest.approx(1.0)
    assert warm_cosine(10, 100, 10, 0.1) == pytest.approx(1.0)
    assert warm_cosine(100, 100, 10, 0.1) == pytest.approx(0.1)
    values = [warm_cosine(i, 100, 10, 0.1) for i in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_stable_adamw_minimises_a_quadratic():
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(20))
    optimizer = stable_adamw([param], lr=0.05, weight_decay=0.0)
    for _ in range(300):
        optimizer.zero_grad()
        (param**2).sum().backward()
        optimizer.step()
    assert param.abs().max() < 0.05
    assert "max_exp_avg_sq" in optimizer.state[param]  # AMSGrad is on


def test_linear_attention_sums_do_not_overflow_float16():
    """Token sums exceed float16's range (65504) for large activations; they must run in float32."""
    import torch

    from mvr3d.models.mvr.student import LinearAttention

    torch.manual_seed(0)
    attention = LinearAttention(dim=64, num_heads=1)
    x = torch.randn(2, 300, 64) * 60.0
    reference = attention(x)
    with torch.no_grad():
        q, k, v = attention.qkv(x).half().float().reshape(2, 300, 3, 64).unbind(2)
        naive_kv = torch.einsum("btd,bte->bde", (torch.nn.functional.elu(k) + 1).half(), v.half())
    assert not torch.isfinite(naive_kv).all()  # the case this guards against
    with torch.autocast("cpu", dtype=torch.float16):  # as scoring runs on CUDA
        half = attention(x)
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), reference, rtol=2e-2, atol=2e-2)
