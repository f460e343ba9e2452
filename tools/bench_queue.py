#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Queue benchmark: reel broker (journal on / off) side by side with RabbitMQ, same machine, same run.

For each round, in turn:
  reel, journal on    `reel broker --journal DIR` + build/queue/reel_bench_queue
  reel, journal off   `reel broker --journal off` + the same load
  RabbitMQ            a durable classic queue, persistent messages (delivery_mode 2), publisher
                      confirms; the same JSON body as reel's SUBMIT header

Three numbers per system, as reel_bench_queue measures them:
  accepted/s   N messages from K publishers with W unconfirmed each; rate of ACCEPTED replies (reel)
               or publisher confirms (RabbitMQ): "durable and acknowledged"
  completed/s  M instant consumers/workers empty the backlog (RabbitMQ: consume + ack each message)
  latency      one message at a time on an idle queue: send → ack (ACCEPTED / confirm) and
               send → delivery at a worker/consumer; p50 / p99 / max over L messages

Needs: a RelWithDebInfo build (cmake -S . -B build -G Ninja && cmake --build build), a local
RabbitMQ on localhost:5672 with guest/guest (Debian: apt-get install rabbitmq-server; as root
`rabbitmq-server &` if no service manager runs it), and `pip install pika`.

    python3 tools/bench_queue.py --build build --rounds 3
"""

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BODY = ('{{"req":{seq},"job":{{"prompt":"b{seq} a lighthouse on a cliff at dusk, waves, slow dolly in",'
        '"model":"builtin:testsrc","frames":16,"width":320,"height":240,"class":"batch"}},"follow":false}}')
QUEUE = "reel-bench"


# ---- reel -----------------------------------------------------------------------------------------

def run_reel(args, journal):
    tmp = tempfile.mkdtemp(prefix="reel-bench-")
    epfile = os.path.join(tmp, "endpoint")
    cmd = [os.path.join(args.build, "cli", "reel"), "broker", "--listen", "tcp://127.0.0.1:*",
           "--endpoint-file", epfile, "--journal", os.path.join(tmp, "journal") if journal else "off",
           "--max-queued-per-tenant", str(args.jobs * 2)]
    broker = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if os.path.exists(epfile) and open(epfile).read().endswith("\n"):
                break
            time.sleep(0.01)
        endpoint = open(epfile).read().strip()
        out = subprocess.run([os.path.join(args.build, "queue", "reel_bench_queue"), "--broker", endpoint,
                              "--jobs", str(args.jobs), "--clients", str(args.clients), "--window", str(args.window),
                              "--workers", str(args.workers), "--latency-jobs", str(args.latency_jobs)],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)
    finally:
        broker.terminate()
        broker.wait()
        shutil.rmtree(tmp, ignore_errors=True)


# ---- RabbitMQ -------------------------------------------------------------------------------------

def rabbit_params():
    import pika
    return pika.ConnectionParameters("localhost", heartbeat=0)


def rabbit_publisher(n, first_seq, window, start, out):
    """Publishes n persistent messages with at most `window` unconfirmed; puts (t_start, t_end)."""
    import pika
    state = {"sent": 0, "confirmed": 0, "last_tag": 0, "t0": 0.0}
    props = pika.BasicProperties(delivery_mode=2)

    def fill(ch):
        while state["sent"] - state["confirmed"] < window and state["sent"] < n:
            ch.basic_publish("", QUEUE, BODY.format(seq=first_seq + state["sent"]).encode(), props)
            state["sent"] += 1

    def on_confirm(frame):
        m = frame.method
        tag = m.delivery_tag
        if m.multiple:
            state["confirmed"] += max(0, tag - state["last_tag"])
        else:
            state["confirmed"] += 1
        state["last_tag"] = max(state["last_tag"], tag)
        if state["confirmed"] >= n:
            out.put((state["t0"], time.perf_counter()))
            conn.close()
            return
        fill(ch_holder[0])

    ch_holder = []

    def on_channel(ch):
        ch_holder.append(ch)
        ch.confirm_delivery(ack_nack_callback=on_confirm, callback=lambda _: go(ch))

    def go(ch):
        start.wait()
        state["t0"] = time.perf_counter()
        fill(ch)

    conn = pika.SelectConnection(rabbit_params(), on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
                                 on_close_callback=lambda c, reason: c.ioloop.stop())
    conn.ioloop.start()


def rabbit_consumer(stop, counter):
    """An instant worker: consumes and acks every message until `stop` is set."""
    import pika
    conn = pika.BlockingConnection(rabbit_params())
    ch = conn.channel()
    ch.basic_qos(prefetch_count=256)

    def on_msg(ch_, method, props, body):
        ch_.basic_ack(method.delivery_tag)
        with counter.get_lock():
            counter.value += 1

    ch.basic_consume(QUEUE, on_msg)
    while not stop.is_set():
        conn.process_data_events(time_limit=0.05)
    conn.close()


def run_rabbit(args):
    import pika
    conn = pika.BlockingConnection(rabbit_params())
    ch = conn.channel()
    ch.queue_declare(QUEUE, durable=True)
    ch.queue_purge(QUEUE)
    conn.close()
    # Accept: K publisher processes.
    start, out = mp.Event(), mp.Queue()
    per = args.jobs // args.clients
    procs = [mp.Process(target=rabbit_publisher, args=(per, i * per, args.window, start, out))
             for i in range(args.clients)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # connections open
    start.set()
    spans = [out.get() for _ in procs]
    for p in procs:
        p.join()
    total = per * args.clients
    accept_s = max(e for _, e in spans) - min(s for s, _ in spans)
    # Drain: M consumer processes.
    stop, counter = mp.Event(), mp.Value("l", 0)
    t1 = time.perf_counter()
    cons = [mp.Process(target=rabbit_consumer, args=(stop, counter)) for _ in range(args.workers)]
    for p in cons:
        p.start()
    while counter.value < total:
        time.sleep(0.002)
    drain_s = time.perf_counter() - t1
    stop.set()
    for p in cons:
        p.join()
    # Latency: one persistent, confirmed publish at a time; a consumer thread timestamps delivery.
    seen = {}
    got = threading.Event()
    ready = threading.Event()
    done = threading.Event()

    def consumer():
        c = pika.BlockingConnection(rabbit_params())
        cc = c.channel()
        cc.basic_qos(prefetch_count=16)

        def on_msg(ch_, method, props, body):
            seen["t"] = time.perf_counter()
            ch_.basic_ack(method.delivery_tag)
            got.set()

        cc.basic_consume(QUEUE, on_msg)
        ready.set()
        while not done.is_set():
            c.process_data_events(time_limit=0.01)
        c.close()

    th = threading.Thread(target=consumer)
    th.start()
    ready.wait()
    pc = pika.BlockingConnection(rabbit_params())
    pch = pc.channel()
    pch.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2)
    ack, disp = [], []
    for k in range(args.latency_jobs):
        got.clear()
        t = time.perf_counter()
        pch.basic_publish("", QUEUE, BODY.format(seq=k).encode(), props)  # returns once confirmed
        ack.append(time.perf_counter() - t)
        got.wait()
        disp.append(seen["t"] - t)
    done.set()
    th.join()
    pc.close()
    ack.sort()
    disp.sort()

    def pct(v, p):
        return v[int(p * (len(v) - 1) + 0.5)] * 1000.0

    return {"jobs": total, "accept_seconds": accept_s, "accepted_per_s": total / accept_s,
            "completed_per_s": total / drain_s,
            "ack_ms": {"p50": pct(ack, 0.5), "p99": pct(ack, 0.99), "max": ack[-1] * 1000},
            "dispatch_ms": {"p50": pct(disp, 0.5), "p99": pct(disp, 0.99), "max": disp[-1] * 1000}}


def fsync_probe(n=1000):
    """fdatasync latency of 300-byte appends in the temp dir: the disk's share of the durable numbers."""
    fd, path = tempfile.mkstemp(prefix="reel-fsync-")
    lat = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, b"x" * 300)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    return {"p50": lat[n // 2] * 1000, "p99": lat[int(n * 0.99)] * 1000}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--latency-jobs", type=int, default=2000)
    ap.add_argument("--no-rabbit", action="store_true")
    args = ap.parse_args()
    print(f"config: jobs={args.jobs} clients={args.clients} window={args.window} workers={args.workers} "
          f"latency_jobs={args.latency_jobs} rounds={args.rounds}", file=sys.stderr)
    results = {"reel, journal on": [], "reel, journal off": [], "RabbitMQ, persistent + confirms": []}
    probes = []
    for r in range(args.rounds):
        probes.append(fsync_probe())
        results["reel, journal on"].append(run_reel(args, True))
        results["reel, journal off"].append(run_reel(args, False))
        if not args.no_rabbit:
            results["RabbitMQ, persistent + confirms"].append(run_rabbit(args))
        print(f"round {r + 1}: " + json.dumps({k: v[-1] for k, v in results.items() if v}), file=sys.stderr)
    med = statistics.median
    rows = []
    for name, runs in results.items():
        if not runs:
            continue
        rows.append((name, med(x["accepted_per_s"] for x in runs), med(x["completed_per_s"] for x in runs),
                     med(x["ack_ms"]["p50"] for x in runs), med(x["ack_ms"]["p99"] for x in runs),
                     med(x["dispatch_ms"]["p50"] for x in runs), med(x["dispatch_ms"]["p99"] for x in runs)))
    print("| system | accepted/s | completed/s | ack p50 (ms) | ack p99 (ms) | dispatch p50 (ms) | dispatch p99 (ms) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row[0]} | {row[1]:,.0f} | {row[2]:,.0f} | {row[3]:.3f} | {row[4]:.3f} | {row[5]:.3f} | {row[6]:.3f} |")
    if len(rows) == 3:
        print(f"\nratio accepted/s, reel journal on / RabbitMQ: {rows[0][1] / rows[2][1]:.2f}x")
    print(f"fdatasync of a 300-byte append here (median of rounds): p50 {med(p['p50'] for p in probes):.3f} ms, "
          f"p99 {med(p['p99'] for p in probes):.3f} ms")


if __name__ == "__main__":
    main()
