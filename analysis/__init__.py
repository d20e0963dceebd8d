"""Trace and result analysis: nsys SQLite and torch Chrome-trace loaders, phase views, plots.

Import submodules directly (`from analysis import phases`); this file stays empty so that
importing one loader never pulls in matplotlib or torch.
"""
