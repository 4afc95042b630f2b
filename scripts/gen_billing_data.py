"""Write the synthetic cloud-billing export used by the billing examples (deterministic).

Two weeks (2025-11-24 .. 2025-12-07) of daily line items for five projects and five services,
with a few SKUs each, in four regions: 2,800 rows. Costs are fixed pseudo-random draws (seed
20251201), and one anomaly is planted: on 2025-12-01 BigQuery in project analytics-prod costs five
times its usual amount. Run `python scripts/gen_billing_data.py` to regenerate
configs/local/cost/data/billing_export.csv; tests check the file matches this script.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "configs/local/cost/data/billing_export.csv"
SEED = 20251201
START = dt.date(2025, 11, 24)
DAYS = 14
PROJECTS = ("analytics-prod", "web-prod", "web-staging", "ml-research", "data-platform")
SERVICES = {
    "Compute Engine": ("N2 Instance Core", "N2 Instance Ram", "PD Capacity"),
    "BigQuery": ("Analysis", "Active Storage"),
    "Cloud Storage": ("Standard Storage", "Egress"),
    "Cloud SQL": ("DB Custom Core", "DB Storage"),
    "Networking": ("Load Balancing",),
}
REGIONS = ("us-central1", "us-east1", "europe-west1", "asia-east1")
ANOMALY = (dt.date(2025, 12, 1), "analytics-prod", "BigQuery", 5.0)
COLUMNS = (
    "usage_date",
    "project_id",
    "service",
    "sku",
    "region",
    "usage_amount",
    "cost",
    "currency",
)


def rows() -> list[tuple[str, ...]]:
    """Every line item of the export, in a fixed order."""
    rng = random.Random(SEED)
    base = {
        (p, s, k, r): rng.uniform(0.5, 15.0)
        for p in PROJECTS
        for s, ks in SERVICES.items()
        for k in ks
        for r in REGIONS
    }
    out = []
    for day in range(DAYS):
        date = START + dt.timedelta(days=day)
        for (project, service, sku, region), level in base.items():
            cost = level * rng.uniform(0.85, 1.15)
            if (date, project, service) == ANOMALY[:3]:
                cost *= ANOMALY[3]
            usage = cost * rng.uniform(8.0, 12.0)
            out.append(
                (
                    date.isoformat(),
                    project,
                    service,
                    sku,
                    region,
                    f"{usage:.3f}",
                    f"{cost:.4f}",
                    "USD",
                )
            )
    return out


def render() -> str:
    """The CSV text, header first, Unix newlines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows())
    return buffer.getvalue()


def main() -> int:
    """Write the export file."""
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT} ({len(rows())} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
