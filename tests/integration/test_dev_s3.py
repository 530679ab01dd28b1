"""`make dev` keeps its bucket across restarts (#11.6): the embedded S3 is mirrored to DATA_DIR/s3."""

from __future__ import annotations

import socket


class _MotoProcess:
    """moto's S3 in its own process: in-process moto servers share one backend, so only a new process
    starts as empty as a restarted `make dev`."""

    def __init__(self, port: int):
        import subprocess
        import sys
        import time

        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                (
                    "import sys, threading; from moto.server import ThreadedMotoServer; "
                    "ThreadedMotoServer(ip_address='127.0.0.1', port=int(sys.argv[1]), verbose=False).start(); "
                    "threading.Event().wait()"
                ),
                str(port),
            ]
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise TimeoutError("moto did not start")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def _moto(port: int) -> _MotoProcess:
    return _MotoProcess(port)


def _client(port: int):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_objects_of_the_embedded_s3_survive_a_restart(tmp_path) -> None:
    from aiteacher_devtools.dev_s3 import S3Mirror

    first_port = _free_port()
    server = _moto(first_port)
    try:
        s3 = _client(first_port)
        s3.create_bucket(Bucket="curriculum")
        etags = {}
        for index in range(3):
            key = f"eng/3/algorithms/lecture {index}.pdf"
            etags[key] = s3.put_object(
                Bucket="curriculum",
                Key=key,
                Body=b"%PDF-1.4 " + bytes([index]) * 50,
                ContentType="application/pdf",
                Metadata={"document-id": str(index)},
            )["ETag"]
        s3.put_object(Bucket="curriculum", Key="gone.pdf", Body=b"deleted later")
        mirror = S3Mirror(tmp_path / "s3", s3)
        assert mirror.save() == 4
        s3.delete_object(Bucket="curriculum", Key="gone.pdf")
        assert mirror.save() == 0  # nothing new; the deleted object is forgotten
    finally:
        server.stop()

    second_port = _free_port()
    server = _moto(second_port)  # a new, empty process-memory S3: what a `make dev` restart starts with
    try:
        s3 = _client(second_port)
        assert S3Mirror(tmp_path / "s3", s3).restore() == 3
        keys = {item["Key"]: item["ETag"] for item in s3.list_objects_v2(Bucket="curriculum")["Contents"]}
        assert keys == etags  # same keys, same ETags: documents keyed by bucket+key+ETag still match
        restored = s3.get_object(Bucket="curriculum", Key="eng/3/algorithms/lecture 1.pdf")
        assert restored["Body"].read() == b"%PDF-1.4 " + bytes([1]) * 50
        assert restored["Metadata"] == {"document-id": "1"} and restored["ContentType"] == "application/pdf"
    finally:
        server.stop()
