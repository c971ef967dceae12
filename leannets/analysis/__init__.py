"""Analyses: profiling, BN folding, export, sharpness, CAM, robustness."""
from .fold_bn import find_conv_bn_pairs, fold_bn
from .profile import ProfileResult, count_macs, count_params, format_table, profile_model

__all__ = ["ProfileResult", "count_macs", "count_params", "find_conv_bn_pairs", "fold_bn", "format_table",
           "profile_model"]
