"""Shared pytest configuration: plugins and the hypothesis profile (fixtures live with tests)."""

from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.bq_emulator", "tests.ui_server", "tests.service_support"]

# Hypothesis' deadline and too_slow checks are timings: on a shared 2-core machine they fail for
# reasons that say nothing about the code. Properties keep their example counts; timings belong
# in benchmarks/.
settings.register_profile(
    "pipestate",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("pipestate")
