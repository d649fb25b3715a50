"""The export simulator on an AwsSimulator: the one implementation is bot/console/export_sim.py
(the console uses it too); here it gets the AwsSimulator's clock and moto's own clients (not the
proxy, whose writes it records)."""

from __future__ import annotations

from typing import Any

import boto3

from bot.console.export_sim import ExportSimulator as _ExportSimulator
from bot.console.export_sim import SimError, SimExport

__all__ = ["ExportSimulator", "SimError", "SimExport"]


class ExportSimulator(_ExportSimulator):
    """Plugged into an AwsSimulator (its `exports` attribute), which hands it every write."""

    def __init__(self, sim: Any):
        self.sim = sim
        super().__init__(sim.now, lambda: sim.client(direct=True), self._moto_s3)

    def _moto_s3(self) -> Any:
        return boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url=self.sim.moto_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106
        )
