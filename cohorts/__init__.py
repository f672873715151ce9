"""The producers of data: the synthetic cohort, competitions built from BraTS releases, simulated classes.

They sit beside the contract (:mod:`data_spec`), which they write through, and
import nothing above it.
"""
