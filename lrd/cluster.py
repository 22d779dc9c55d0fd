"""Connecting to Ray for the `engine: ray` settings, and turning a failed Ray job into one clear error.

Imported only where an engine is `ray`, and Ray itself only inside these functions, so the
default install never needs the `scale` extra.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
from pathlib import Path

from lrd.errors import ConfigError, DistributedError

log = logging.getLogger(__name__)

EXTRA = "pip install -e '.[scale]'"
CONNECT_TIMEOUT_S = 25.0  # a cluster that does not answer fails the stage well within 30 s


def require_ray(setting: str):
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError(f"params.yaml: `{setting}: ray` needs Ray, which is not installed here: {EXTRA}") from None
    return ray


def connect(setting: str):
    """Ray, connected to the cluster at RAY_ADDRESS when it is set, else to a local one started
    here (once per process; an existing connection is reused)."""
    ray = require_ray(setting)
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if address and address not in ("auto", "local"):
        _probe(address)
    if not ray.is_initialized():
        package = str(Path(__file__).resolve().parent)
        if address:
            # The cluster's workers run this checkout's lrd (shipped with the job), in their own environment.
            _init_within(ray, CONNECT_TIMEOUT_S, address=address, runtime_env={"py_modules": [package]},
                         logging_level=logging.WARNING, log_to_driver=False)
        else:  # a local cluster: workers share this filesystem, so pointing them at this checkout is enough
            ray.init(runtime_env={"env_vars": {"PYTHONPATH": str(Path(package).parent)}}, include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=False)
        log.info("Ray cluster: %s", ", ".join(f"{v:g} {k}" for k, v in sorted(ray.cluster_resources().items())
                                               if k in ("CPU", "GPU")))
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ray


def _probe(address: str) -> None:
    """Fail fast when nothing listens at the address (ray.init would wait minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise DistributedError(f"RAY_ADDRESS={address}: no Ray cluster answers there ({exc}); start one "
                               "(`ray start --head`) or unset RAY_ADDRESS to run on a local cluster") from None


def _init_within(ray, seconds: float, **kwargs) -> None:
    """ray.init(**kwargs), or DistributedError when it has not connected after `seconds`
    (something listens at the address but is not a Ray cluster that answers)."""
    done, failed = threading.Event(), []

    def connect_now():
        try:
            ray.init(**kwargs)
        except BaseException as exc:  # handed to the caller's thread
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=connect_now, daemon=True).start()  # connecting starts no process, so a thread may do it
    if not done.wait(seconds):
        raise DistributedError(f"RAY_ADDRESS={kwargs['address']}: the Ray cluster did not answer within {seconds:.0f} s; "
                               "check the address (`ray status` on the head node) or unset RAY_ADDRESS")
    if failed:
        raise DistributedError(f"RAY_ADDRESS={kwargs['address']}: cannot connect to the Ray cluster: {failed[0]}") from None


@contextlib.contextmanager
def ray_job(what: str):
    """Around running a Ray Data job: a job Ray could not finish (after retrying the tasks of
    killed workers itself) becomes a DistributedError, raised before any output is renamed into place."""
    import ray

    try:
        yield
    except ray.exceptions.RayError as exc:
        raise DistributedError(f"the Ray job {what} failed: {_reason(exc)}; earlier outputs are left as they were") from exc


def _reason(exc: Exception) -> str:
    """The error a worker raised (Ray wraps it in its own, with Ray Data's retry advice last)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception): ", line) and not line.startswith("ray.")]
    return (raised or lines or [type(exc).__name__])[0]
