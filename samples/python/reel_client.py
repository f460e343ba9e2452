#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A reel queue client in Python with nothing but pyzmq (pip install pyzmq).

Written from docs/protocol.md alone: it submits one job to a reel broker, follows
its events (queue position, progress, state changes) and prints the final job
record as JSON on stdout. Progress goes to stderr.

    python3 reel_client.py --broker tcp://127.0.0.1:5555 --seed 7 "a red circle moving to the right"
    python3 reel_client.py --broker ... --broker-key keys/broker.pub --key me.key "..."

Exit status: 0 when the job succeeded, 1 when it failed/was canceled/expired or
the broker reported an error, 2 for bad usage.
"""

import argparse
import json
import os
import re
import sys
import time
import uuid

import zmq

PROTOCOL = b"reel/1"
TERMINAL = {"succeeded", "failed", "canceled", "expired"}


class BrokerError(Exception):
    """An ERROR reply: code (a reel status name), field and message."""

    def __init__(self, header):
        self.code = header.get("code", "EPROTO")
        self.field = header.get("field", "")
        super().__init__(f"{self.field + ': ' if self.field else ''}{header.get('message', '')} ({self.code})")


def read_key_file(path):
    """Returns (public, secret) Z85 strings from a `reel keygen` file; secret is None for .pub files."""
    keys = {}
    with open(path, encoding="ascii") as f:
        for line in f:
            m = re.match(r'\s*(public|secret)\s*=\s*"([^"]{40})"', line)
            if m:
                keys[m.group(1)] = m.group(2)
    if "public" not in keys:
        raise ValueError(f"{path}: no public key")
    return keys["public"], keys.get("secret")


class Client:
    """One DEALER socket to the broker; requests are matched to replies by "req"."""

    def __init__(self, endpoint, broker_key=None, key=None, tenant=None, heartbeat_ms=2500, liveness=3):
        self.ctx = zmq.Context.instance()
        self.endpoint = endpoint
        self.broker_key, self.key, self.tenant = broker_key, key, tenant
        self.heartbeat_ms, self.liveness = heartbeat_ms, liveness
        self.next_req = 0
        self.broker_id = None
        self.followed = set()
        self.sock = None
        self._connect()

    def _connect(self):
        if self.sock is not None:
            self.sock.close(linger=0)
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        if self.broker_key:
            public, secret = self.key
            self.sock.curve_serverkey = self.broker_key.encode()
            self.sock.curve_publickey = public.encode()
            self.sock.curve_secretkey = secret.encode()
        self.sock.connect(self.endpoint)
        self.last_send = self.last_recv = time.monotonic()

    def _send(self, command, header):
        if self.tenant and not self.broker_key and "tenant" not in header:
            header["tenant"] = self.tenant
        self.sock.send_multipart([PROTOCOL, command.encode(), json.dumps(header).encode()])
        self.last_send = time.monotonic()

    def _recv(self, timeout_s):
        """One message as (command, header), or None after timeout_s."""
        if not self.sock.poll(int(timeout_s * 1000)):
            return None
        frames = self.sock.recv_multipart()
        if len(frames) not in (3, 4) or frames[0] != PROTOCOL:
            raise BrokerError({"code": "EPROTO", "message": "malformed message from the broker"})
        self.last_recv = time.monotonic()
        return frames[1].decode(), json.loads(frames[2])

    def request(self, command, header, timeout_s=30.0, on_event=None):
        """Sends a request and returns the reply header; events arriving meanwhile go to on_event."""
        self.next_req += 1
        req = self.next_req
        header = dict(header, req=req)
        self._send(command, header)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = self._recv(min(self.heartbeat_ms / 1000.0, max(0.0, deadline - time.monotonic())))
            if msg is None:
                if time.monotonic() - self.last_recv > self.heartbeat_ms * self.liveness / 1000.0:
                    self._connect()  # broker gone: reconnect and resend (submits carry an idempotency key)
                    self._send(command, header)
                else:
                    self._send("PING", {"req": "hb"})
                continue
            cmd, h = msg
            if cmd == "EVENT":
                if on_event:
                    on_event(h)
                continue
            if cmd == "PONG":
                self._note_broker(h)
            if h.get("req") != req:
                continue
            if cmd == "ERROR":
                raise BrokerError(h)
            return h
        raise BrokerError({"code": "ETIMEDOUT", "field": "timeout", "message": f"no reply from {self.endpoint}"})

    def _note_broker(self, pong):
        bid = pong.get("broker")
        self.heartbeat_ms = pong.get("heartbeat_ms", self.heartbeat_ms)
        self.liveness = pong.get("liveness", self.liveness)
        if self.broker_id and bid != self.broker_id:
            # The broker restarted: follow our jobs again.
            for job_id in list(self.followed):
                self._send("FOLLOW", {"req": f"follow:{job_id}", "job_id": job_id})
        self.broker_id = bid

    def submit(self, spec):
        spec = dict(spec)
        spec.setdefault("idempotency_key", "py-" + uuid.uuid4().hex)
        reply = self.request("SUBMIT", {"job": spec, "follow": True})
        self.followed.add(reply["job_id"])
        return reply

    def status(self, job_id):
        return self.request("STATUS", {"job_id": job_id})["job"]

    def wait(self, job_id, on_event=None, timeout_s=None):
        """Follows a job until it is terminal; returns the final job record."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        record = self.request("FOLLOW", {"job_id": job_id}, on_event=on_event)["job"]
        while record["state"] not in TERMINAL:
            if deadline is not None and time.monotonic() > deadline:
                raise BrokerError({"code": "ETIMEDOUT", "message": f"job {job_id} did not finish in time"})
            msg = self._recv(self.heartbeat_ms / 1000.0)
            if msg is None:
                # Quiet: ping, and after liveness heartbeats of silence reconnect and re-follow.
                if time.monotonic() - self.last_recv > self.heartbeat_ms * self.liveness / 1000.0:
                    self._connect()
                    record = self.request("FOLLOW", {"job_id": job_id}, on_event=on_event)["job"]
                else:
                    self._send("PING", {"req": "hb"})
                continue
            cmd, h = msg
            if cmd == "PONG":
                self._note_broker(h)
            elif cmd == "JOB" and str(h.get("req", "")).startswith("follow:"):
                record = h["job"]
            elif cmd == "EVENT" and h.get("job_id") == job_id:
                if on_event:
                    on_event(h)
                if h.get("event") == "state":
                    record = h["job"]
        self.followed.discard(job_id)
        return self.status(job_id)


def print_event(ev):
    kind = ev.get("event")
    if kind == "progress":
        eta = f"  ETA {ev['eta_ms'] / 1000:.1f} s" if "eta_ms" in ev else ""
        print(f"{ev['job_id']}: {ev['stage']} {ev.get('step', 0)}/{ev.get('steps', 0)} "
              f"{100 * ev.get('fraction', 0):.0f}%{eta}", file=sys.stderr)
    elif kind == "position":
        print(f"{ev['job_id']}: queued, position {ev['position']}", file=sys.stderr)
    elif kind == "state":
        print(f"{ev['job_id']}: {ev['state']}", file=sys.stderr)


def main(argv):
    p = argparse.ArgumentParser(description="Submit one job to a reel broker and follow it (pyzmq only).")
    p.add_argument("prompt", nargs="+", help="what the clip should show")
    p.add_argument("--broker", default=os.environ.get("REEL_BROKER"), help="endpoint (default $REEL_BROKER)")
    p.add_argument("--broker-key", default=os.environ.get("REEL_BROKER_KEY"), help="broker .pub file (CURVE)")
    p.add_argument("--key", default=os.environ.get("REEL_KEY"), help="this client's .key file (CURVE)")
    p.add_argument("--tenant", help="tenant, without auth")
    p.add_argument("--model")
    p.add_argument("--frames", type=int)
    p.add_argument("--size", help="WxH")
    p.add_argument("--seed", type=int)
    p.add_argument("--class", dest="job_class", choices=["interactive", "batch"])
    p.add_argument("--priority", type=int)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the job")
    args = p.parse_args(argv)
    if not args.broker:
        p.error("--broker is required (or set REEL_BROKER)")
    spec = {"prompt": " ".join(args.prompt)}
    for name in ("model", "frames", "seed", "priority"):
        if getattr(args, name) is not None:
            spec[name] = getattr(args, name)
    if args.job_class:
        spec["class"] = args.job_class
    if args.size:
        m = re.fullmatch(r"(\d+)x(\d+)", args.size)
        if not m:
            p.error("--size must be WxH, e.g. 832x480")
        spec["width"], spec["height"] = int(m.group(1)), int(m.group(2))
    broker_key = key = None
    if args.broker_key:
        broker_key = read_key_file(args.broker_key)[0]
        if not args.key:
            p.error("--key is required with --broker-key")
        key = read_key_file(args.key)
    client = Client(args.broker, broker_key=broker_key, key=key, tenant=args.tenant)
    try:
        accepted = client.submit(spec)
        print(f"{accepted['job_id']}: accepted (position {accepted.get('position', 0)})", file=sys.stderr)
        record = client.wait(accepted["job_id"], on_event=print_event, timeout_s=args.timeout)
    except BrokerError as e:
        print(f"reel_client.py: {e}", file=sys.stderr)
        return 1
    print(json.dumps(record))
    return 0 if record["state"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
