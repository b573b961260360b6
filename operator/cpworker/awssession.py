"""Where the operator's AWS sessions come from: sessions that share one botocore data loader.

botocore gives every session a loader of its own, and each loader reads and keeps its own
copy of the endpoint data and the service models: about 9 MiB resident per session, measured
(endpoints.json alone is a megabyte of JSON). The operator makes a session per region and role
(two for an assumed role: STS, then CodePipeline) and one for the events queue, so a second
region or role cost as much memory as a thousand idle workers' state. The loader only reads
files that do not change while the process runs, and its cache may be shared.
"""

from __future__ import annotations

import functools

import boto3.session
import botocore.loaders
import botocore.session


@functools.cache
def _loader() -> botocore.loaders.Loader:
    return botocore.loaders.create_loader()


def botocore_session() -> botocore.session.Session:
    """A new botocore session (its own credentials and config) over the shared loader."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _loader())
    return core


def session(region: str | None = None) -> boto3.session.Session:
    """A new boto3 session over the shared loader. Like any boto3 session, it is not
    thread-safe while it creates clients; the clients are."""
    return boto3.session.Session(botocore_session=botocore_session(), region_name=region)
