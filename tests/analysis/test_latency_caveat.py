"""A latency ratio is judged only on a quiet machine and when the paired ratio describes the medians."""
from leannets.analysis.latency import ratio_caveat


def test_busy_machine_or_spread_rounds_are_not_judged():
    assert "machine was busy (load average 3.5 with 2 thread(s)" in ratio_caveat(1.5, (1.06, 2.32), 15.0, 10.0, 3.5, 2)
    # the profile case of the issue: ratio 0.425 (0.316–0.890) beside medians 14.4 vs 14.0 ms
    assert "too spread" in ratio_caveat(0.425, (0.316, 0.890), 14.4, 14.0, 0.2, 2)
    assert ratio_caveat(0.93, (0.90, 0.97), 9.3, 10.0, 0.3, 2) is None
