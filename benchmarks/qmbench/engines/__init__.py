"""The workloads written for each engine; each module runs in its engine's interpreter.

Every module exposes ``make(workload, variant, size, params, workdir) -> Bench``
(see `qmbench.measure.Bench`).
"""
