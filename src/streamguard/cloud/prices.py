"""Instance prices and the measuring machine's constants, shared by ``estimate`` (training jobs),
``pretrain_cost`` (pre-training) and the spend ledger: below all three, so none imports another."""
from __future__ import annotations

import dataclasses

MEASURED_VCPUS = 2
H100_BANDWIDTH_GBS = 3350
START_OVERHEAD_H = 0.1     # instance start, image pull, data download: an allowance, not a measurement


@dataclasses.dataclass(frozen=True)
class Instance:
    name: str
    vcpus: int
    gpu: str | None
    gpu_bandwidth_gbs: int          # per GPU, from the vendor's data sheet
    gpus: int
    on_demand_usd_h: float


# SageMaker training list prices, us-east-1, on-demand (see docs/cloud-cost.md); spot = typical discount.
INSTANCES = {i.name: i for i in (
    Instance("ml.m5.xlarge", 4, None, 0, 0, 0.23),
    Instance("ml.c5.4xlarge", 16, None, 0, 0, 0.816),
    Instance("ml.g4dn.xlarge", 4, "T4", 320, 1, 0.736),
    Instance("ml.g4dn.12xlarge", 48, "T4", 320, 4, 4.89),
    Instance("ml.g5.xlarge", 4, "A10G", 600, 1, 1.408),
    Instance("ml.p3.2xlarge", 8, "V100", 900, 1, 3.825),
)}
SPOT_DISCOUNT = 0.70
