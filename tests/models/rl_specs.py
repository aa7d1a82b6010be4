"""Policy specs learning from an agent's logged steps (the RL loop), for the tests: the
agent's Step event (EventEmitterHarness emits it with IMiraPolicyAgent.Step's signature)
mapped to records of arm, reward and one context feature."""

from __future__ import annotations

from pathlib import Path

RL_SPEC = """
id = "RL/bandit"
version = 1
description = "a K-armed market's policy, learned from the agent's steps"
decimals = 8

[[sources]]
name = "agent"
kind = "chain_events"
rpc_url = "{url}"
address = "{address}"
contract = "EventEmitterHarness"
event = "Step"
scale_decimals = 8
confirmations = {confirmations}

[sources.fields]
arm = "arm"
reward = "reward"
ctx = "context.0"

[sources.decimals]
arm = 0

[sources.limits]
reward = [-10.0, 10.0]

[features]
fields = ["arm", "ctx", "reward"]

{model}

[output]
kind = "policy"
arms = ["a", "b", "c"]
arm_field = "arm"
reward_field = "reward"
context = {context}
recommend = true

[quantize]
rounding = "ROUND_HALF_EVEN"

[publish]
deviation_bps = 100
heartbeat_s = 3600
"""

MODELS = {
    "epsilon_greedy": (
        '[[model.steps]]\nclass = "bandit.EpsilonGreedy"\nepsilon = 0.1\nseed = 42\n'
        '[model.steps.reward_obj]\nclass = "stats.Mean"\n'
    ),
    "ucb": '[[model.steps]]\nclass = "bandit.UCB"\ndelta = 0.5\nseed = 3\n',
    "thompson": (
        '[[model.steps]]\nclass = "bandit.ThompsonSampling"\nseed = 5\n'
        '[model.steps.reward_obj]\nclass = "proba.Gaussian"\n'
    ),
    "contextual": (
        '[[model.steps]]\nclass = "bandit.ContextualLinear"\nepsilon = 0.05\nseed = 7\n'
        "lr = 0.05\nburn_in = 3\n"
    ),
}


def rl_spec(
    directory: Path,
    model: str,
    *,
    url: str = "http://127.0.0.1:1",
    address: str = "0x" + "11" * 20,
    confirmations: int = 2,
    **replace: str,
) -> Path:
    """The spec with the policy ``model`` (a key of :data:`MODELS`); ``replace`` swaps
    any further placeholder or text."""
    text = RL_SPEC
    context = '["ctx"]' if model == "contextual" else "[]"
    values = {
        "url": url,
        "address": address,
        "confirmations": str(confirmations),
        "model": MODELS[model],
        "context": context,
    }
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = directory / f"rl_{model}_{len(list(directory.glob('rl_*.toml')))}.toml"
    path.write_text(text)
    return path
