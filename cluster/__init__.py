"""Where it runs: a local single-node Ray, or an existing cluster by address; whether a request fits it."""

from tunelab.cluster.capacity import Knobs, check_fits, report_pending
from tunelab.cluster.connect import (
           ClusterError,
           ClusterInfo,
           can_autoscale,
           connect,
           disconnect,
           local_info,
           running_head,
)

__all__ = ["ClusterError", "ClusterInfo", "Knobs", "can_autoscale", "check_fits", "connect", "disconnect", "local_info",
           "report_pending", "running_head"]
