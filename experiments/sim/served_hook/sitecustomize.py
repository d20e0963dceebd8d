"""Imported by every Python process started with this folder first on PYTHONPATH (the `served`
variants of `experiments.sim.served` put it there for `vllm serve`): with SIM_SERVED_STEPS=1 it
arms `experiments.sim.served_steps`, which times every engine step inside the EngineCore process."""
import os

if os.environ.get("SIM_SERVED_STEPS") == "1":
    from experiments.sim import served_steps

    served_steps.arm()
