# mitogen_bench.py: the Mitogen side of `spindle bench --peers`.
#
# spindle embeds this file, writes it to a temporary directory and runs it
# with a python that imports mitogen. It measures, through Mitogen's public
# API, the operations spindle bench measures of itself, and prints one JSON
# object of numbers on stdout (the keys are spindle bench's). Progress goes
# to stderr as "mitogen_bench: PHASE" lines. Written for spindle; it uses
# only mitogen.master.Router/Broker, Router.local, Context.call,
# Context.call_async, Receiver/Sender and Context.send.
#
# The children run functions of this module: Mitogen sends them the source
# of __main__ up to the guard at the bottom, so everything they need is
# defined above it and nothing runs at import.

import argparse
import json
import os
import statistics
import sys
import threading
import time

import mitogen.core
import mitogen.master

MIB = 1 << 20


def rss_bytes(pid):
    """VmRSS of pid, in bytes, as spindle's stats native reads its own."""
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    return -1


@mitogen.core.takes_router
def sink(total, ack, router):
    """Runs in the child: hand back a Sender, count raw bytes sent to it
    until total arrive, then send the count back on ack."""
    recv = mitogen.core.Receiver(router)
    ack.send(recv.to_sender())
    got = 0
    while got < total:
        got += len(recv.get().data)
    ack.send(got)
    recv.close()
    return got


def progress(phase):
    sys.stderr.write('mitogen_bench: %s\n' % phase)
    sys.stderr.flush()


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def start(router, via=None, name=None):
    return router.local(python_path=sys.executable, via=via, name=name)


def bench_spawn(router, n):
    """Start a child until it answers a call, then shut it down; median."""
    ds = []
    for i in range(n):
        t0 = time.perf_counter()
        c = start(router, name='spawn%d' % i)
        c.call(str, 'ping')
        ds.append(time.perf_counter() - t0)
        c.shutdown(wait=True)
    return statistics.median(ds)


def round_trips(ctx, n):
    ds = []
    for i in range(n + n // 10):
        t0 = time.perf_counter()
        ctx.call(str, 'ping')
        if i >= n // 10:
            ds.append(time.perf_counter() - t0)
    return statistics.median(ds), percentile(ds, 99)


def pipelined(ctx, n, window):
    """n calls, window of them in flight at once; calls per second."""
    t0 = time.perf_counter()
    done = 0
    while done < n:
        w = min(window, n - done)
        pend = [ctx.call_async(str, 'ping') for _ in range(w)]
        for p in pend:
            p.get().unpickle()
        done += w
    return n / (time.perf_counter() - t0)


def throughput(router, ctx, total):
    """total bytes as 1 MiB raw messages to a sink in ctx, then its ack."""
    ack = mitogen.core.Receiver(router)
    call = ctx.call_async(sink, total, ack.to_sender())
    to = ack.get().unpickle()
    chunk = b'\0' * MIB
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        # The raw body is not pickled: the counterpart of spindle's
        # EncRaw messages.
        to.context.send(mitogen.core.Message(handle=to.dst_handle, data=chunk))
        sent += len(chunk)
    got = ack.get().unpickle()
    elapsed = time.perf_counter() - t0
    call.get().unpickle()
    ack.close()
    if got != total:
        raise Exception('sink counted %d bytes, want %d' % (got, total))
    return total / elapsed


def fanout(router, n):
    """Start n children at once, each called once; the wall time."""
    kids = [None] * n
    errs = []

    def one(i):
        try:
            c = start(router, name='fan%d' % i)
            c.call(os.getpid)
            kids[i] = c
        except Exception as e:  # reported after the join
            errs.append(e)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    d = time.perf_counter() - t0
    for c in kids:
        if c is not None:
            c.shutdown(wait=True)
    if errs:
        raise errs[0]
    return d


def run(args):
    res = {}
    broker = mitogen.master.Broker()
    router = mitogen.master.Router(broker)
    try:
        progress('spawn')
        res['spawn_local_ms'] = bench_spawn(router, args.spawns) * 1e3

        progress('round trips')
        c1 = start(router, name='hop1')
        c2 = start(router, via=c1, name='hop2')
        c3 = start(router, via=c2, name='hop3')
        for hop, c in ((1, c1), (2, c2), (3, c3)):
            med, p99 = round_trips(c, args.rtt)
            res['rtt_%dhop_us' % hop] = med * 1e6
            res['rtt_%dhop_p99_us' % hop] = p99 * 1e6

        progress('pipelined')
        res['pipelined_calls_per_s'] = pipelined(c1, args.pipelined, 2000)

        progress('throughput')
        res['throughput_mb_s'] = throughput(router, c1, args.bulk_mib * MIB) / 1e6

        progress('idle rss')
        idle = start(router, name='idle')
        res['child_rss_mb'] = rss_bytes(idle.call(os.getpid)) / 1e6
        idle.shutdown(wait=True)
        c1.shutdown(wait=True)

        progress('fanout')
        res['fanout20_ms'] = statistics.median(
            fanout(router, 20) for _ in range(args.fanout_rounds)) * 1e3
    finally:
        broker.shutdown()
        broker.join()
    return {k: round(v, 1) for k, v in res.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--spawns', type=int, default=10)
    p.add_argument('--rtt', type=int, default=2000)
    p.add_argument('--pipelined', type=int, default=10000)
    p.add_argument('--bulk-mib', type=int, default=256)
    p.add_argument('--fanout-rounds', type=int, default=1)
    args = p.parse_args()
    res = run(args)
    res['mitogen_version'] = '.'.join(map(str, mitogen.__version__))
    res['python_version'] = '%d.%d.%d' % sys.version_info[:3]
    json.dump(res, sys.stdout)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
