"""What a heartbeat says about the node, and about the agent itself."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from sdd.protocol import Metrics


class MetricsSampler:
    def __init__(self, disk_path: Path) -> None:
        self.disk_path = disk_path
        self._me = psutil.Process()
        # cpu_percent measures since the previous call; prime both so the first beat is real.
        psutil.cpu_percent(None)
        self._me.cpu_percent(None)

    def sample(self) -> Metrics:
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(str(self.disk_path))
        load = os.getloadavg()
        return Metrics(
            cpu_percent=min(100.0, psutil.cpu_percent(None)),
            cpu_count=psutil.cpu_count() or 0,
            memory_percent=memory.percent,
            memory_total=memory.total,
            memory_used=memory.total - memory.available,
            disk_percent=disk.percent,
            disk_total=disk.total,
            disk_used=disk.used,
            load_1=load[0],
            load_5=load[1],
            load_15=load[2],
            agent_rss=self._me.memory_info().rss,
            agent_cpu_percent=self._me.cpu_percent(None),
        )
