"""Helpers of the lake tests: the lake's environment, an independent reader
(pyarrow on S3), and an S3 proxy that fails requests on purpose."""

import http.client
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from kafka_util import run_env

EVENT_TOPICS = ["clicks", "carts", "purchases"]


def lake_env(broker, prefix, s3, endpoint=None, **extra):
    """`shopflow run` settings with the raw layer on the test S3, under `prefix`."""
    s3_endpoint, bucket = s3
    env = run_env(broker, prefix, kafka_start="earliest", dataflow_workers=2,
                  lake_url=f"s3://{bucket}/{prefix.rstrip('.')}",
                  lake_s3_endpoint=endpoint or s3_endpoint, **extra)
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true")
    return env


def last_commit(postgres, schema):
    """The newest `pipeline_progress` update (None before the first commit)."""
    with psycopg.connect(postgres, autocommit=True) as conn, conn.cursor() as cur:
        try:
            cur.execute(f"SELECT max(updated_at) FROM {schema}.pipeline_progress")
        except psycopg.errors.UndefinedTable:
            return None
        return cur.fetchone()[0]


def filesystem(s3):
    endpoint, _ = s3
    return pafs.S3FileSystem(access_key="test", secret_key="test", region="us-east-1",
                             endpoint_override=endpoint.removeprefix("http://"), scheme="http")


def raw_dataset(s3, prefix, topic):
    """The raw layer of one topic as pyarrow sees it (Hive partitions)."""
    _, bucket = s3
    return ds.dataset(f"{bucket}/{prefix.rstrip('.')}/raw/{topic}", filesystem=filesystem(s3),
                      format="parquet", partitioning="hive")


def raw_files(s3, prefix, topic):
    """Every object under a topic's raw prefix: (path, size)."""
    _, bucket = s3
    sel = pafs.FileSelector(f"{bucket}/{prefix.rstrip('.')}/raw/{topic}", recursive=True,
                            allow_not_found=True)
    return [(i.path, i.size) for i in filesystem(s3).get_file_info(sel)
            if i.type == pafs.FileType.File]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args):
        pass

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _any(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        proxy = self.server
        mode = None
        if self.command == "PUT" and ".parquet" in self.path:
            with proxy.lock:
                proxy.puts += 1
                mode = proxy.plan[proxy.puts % len(proxy.plan)]
                if mode:
                    proxy.faults[mode] = proxy.faults.get(mode, 0) + 1
        if mode == "drop_before":
            return self._drop()
        if mode == "stall":
            time.sleep(proxy.stall)
        up = http.client.HTTPConnection("127.0.0.1", proxy.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        up.request(self.command, self.path, body=body, headers=headers)
        resp = up.getresponse()
        data = resp.read()
        up.close()
        if mode in ("drop_after", "stall"):
            return self._drop()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in ("connection", "transfer-encoding") or (
                    k.lower() == "content-length" and self.command != "HEAD"):
                continue
            self.send_header(k, v)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _any


class FlakyS3:
    """An HTTP proxy in front of moto that fails raw-file PUTs in turn: the
    connection dropped before the write reaches S3, the answer lost after the
    write, or a stall past the client's time-out (then the write lands late)."""

    def __init__(self, upstream_port, stall=3.0,
                 plan=(None, "drop_before", None, "drop_after", None, "stall")):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.upstream, self.server.stall, self.server.plan = upstream_port, stall, plan
        self.server.lock, self.server.puts, self.server.faults = threading.Lock(), 0, {}
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def faults(self):
        return dict(self.server.faults)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.server.shutdown()
        self.server.server_close()
