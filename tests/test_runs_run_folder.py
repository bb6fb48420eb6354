"""The trainers' run folder (tokzoo.runs.run_folder): AdamW state by parameter name round-trips exactly, also for
parameters that never had a gradient, and damaged state is refused in one line."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from tokzoo.errors import CheckpointError
from tokzoo.runs.run_folder import OPTIMIZER, load_optimizer, optimizer_tensors, write_tensors


def trained(unused: bool = True):
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({"used": torch.nn.Linear(3, 2), "unused": torch.nn.Linear(2, 2)})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        loss = model["used"](torch.randn(4, 3)).square().sum()
        if not unused:
            loss = loss + model["unused"](torch.randn(4, 2)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, optimizer


def test_adamw_state_round_trips_by_name_without_the_parameters_that_had_none(tmp_path):
    model, optimizer = trained()
    write_tensors(tmp_path, tmp_path / OPTIMIZER, optimizer_tensors(model, optimizer))
    assert sorted(load_file(str(tmp_path / OPTIMIZER))) == sorted(
        f"used.{p}.{k}" for p in ("bias", "weight") for k in ("exp_avg", "exp_avg_sq", "step")
    )
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-2)
    load_optimizer(tmp_path, model, fresh, every_parameter=False)
    for p in model.parameters():
        assert fresh.state.get(p, {}).keys() == optimizer.state.get(p, {}).keys()
        for key, value in optimizer.state.get(p, {}).items():
            assert torch.equal(fresh.state[p][key], value) and fresh.state[p][key].dtype == value.dtype
    with pytest.raises(CheckpointError, match="missing tensor"):  # fm's rule: every parameter has its state
        load_optimizer(tmp_path, model, torch.optim.AdamW(model.parameters()))


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda t: t.pop("used.weight.exp_avg"), "missing tensor"),
        (lambda t: t.update({"used.weight.exp_avg_sq": -t["used.weight.exp_avg_sq"] - 1}), "out of range"),
        (lambda t: t.update({"used.bias.exp_avg": t["used.bias.exp_avg"] * float("nan")}), "NaN"),
        (lambda t: t.update({"other.step": torch.zeros((), dtype=torch.float64)}), "unexpected tensor"),
    ],
)
def test_damaged_adamw_state_is_refused_in_one_line(tmp_path, damage, message):
    model, optimizer = trained(unused=False)
    tensors = optimizer_tensors(model, optimizer)
    damage(tensors)
    save_file(tensors, str(tmp_path / OPTIMIZER))
    with pytest.raises(CheckpointError, match=message) as error:
        load_optimizer(tmp_path, model, torch.optim.AdamW(model.parameters()), every_parameter=False)
    assert "\n" not in str(error.value) and OPTIMIZER in str(error.value)
