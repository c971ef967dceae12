"""Analyses: profiling, the latency harness, BN folding, export, sharpness, CAM, robustness."""
from .convert import ConvertReport, convert
from .fold_bn import find_conv_bn_pairs, fold_bn
from .latency import measure_latency, prepare_for_inference
from .profile import ProfileResult, count_macs, count_params, format_table, profile_model, profile_models

__all__ = ["ConvertReport", "convert", "ProfileResult", "count_macs", "count_params", "find_conv_bn_pairs", "fold_bn", "format_table",
           "measure_latency", "prepare_for_inference", "profile_model", "profile_models"]
