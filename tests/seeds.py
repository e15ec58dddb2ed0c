"""The documented example bodies (API.md §1), shared by the tests that need a valid answer."""

from __future__ import annotations

from typing import Any


def seed_usage(org_id: str, key_id: str) -> dict[str, Any]:
    """The usage page's example answer (camelCase) for ``key_id`` of ``org_id``, November 2025."""
    return {
        "apiKeyId": key_id,
        "apiKeyName": "Production Key",
        "organizationId": org_id,
        "month": 11,
        "year": 2025,
        "usage": {"totalRequests": 1250, "totalCost": 350.25, "totalSynapses": 125000,
                  "totalNeurons": 2500000, "averageCostPerRequest": 0.28},
        "limit": {"monthlyLimit": 500.00, "utilizationPercentage": 70.05,
                  "remainingBudget": 149.75, "status": "ok"},
    }
