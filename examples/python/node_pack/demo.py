#!/usr/bin/python3
"""demo.py - the node pack at work: four streaming threads run the TTS node
over a mix of ChatterBox and F5-TTS languages, under a device budget that
holds only a few models, so the cache keeps evicting and rebuilding
engines. Prints the factory calls, hits and evictions, and the bytes in use
against the budget over time; checks that the budget held, that every
result is the same as a reference run, and that nothing is left behind.
Exit code 0 when all holds (ctest runs it: examples/node_pack).

    PYTHONPATH=python TTSM_LIBRARY=build/libttsm.so \\
        python3 examples/python/node_pack/demo.py --models-dir examples/models
"""
import argparse
import collections
import gc
import hashlib
import os
import sys
import threading
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nodes  # noqa: E402
import tiny_engines  # noqa: E402
import ttsm  # noqa: E402

REQUESTS = [("chatterbox", "English"), ("f5tts", "German"), ("chatterbox", "German"),
            ("f5tts", "Spanish"), ("chatterbox", "French"), ("f5tts", "French"),
            ("f5tts", "Italian"), ("chatterbox", "Japanese"), ("f5tts", "Japanese"),
            ("chatterbox", "English"), ("f5tts", "German")]
TEXTS = ["The cache holds the engines.", "Ein Satz nach dem anderen.", "Hola.",
         "Bonjour, tout le monde.", "Streaming, chunk by chunk."]


def digest(wave):
    return hashlib.sha256(wave.numpy().tobytes()).hexdigest()[:12]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models-dir", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
    ap.add_argument("--budget", default="20KiB")
    ap.add_argument("--chunks", type=int, default=12, help="sentences per thread")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # tiny layers: threads would only add noise

    calls = collections.Counter()
    lock = threading.Lock()
    for name in ("build_chatterbox", "build_f5"):
        inner = getattr(tiny_engines, name)

        def counted(config, weights, ctx, inner=inner):
            with lock:
                calls[(config.engine, config.model_name)] += 1
            return inner(config, weights, ctx)
        setattr(tiny_engines, name, counted)
    tiny_engines.register()

    print("dropdowns of the chatterbox node:",
          {k: v for k, v in nodes.dropdowns("chatterbox").items() if k != "params"})

    # The reference: every request once, in a manager with no budget.
    with ttsm.Manager(models_dir=args.models_dir) as ref_mgr:
        reference = {(e, lang, text): digest(nodes.tts_node(ref_mgr, e, text, lang,
                                                            device="cpu")[0])
                     for e, lang in set(REQUESTS) for text in TEXTS}
    calls.clear()

    budget = ttsm.parse_size(args.budget)
    evictions = collections.Counter()
    mgr = ttsm.Manager(models_dir=args.models_dir, budgets={"cpu": budget},
                       on_evict=lambda entry, why: evictions.update([why]))
    timeline, problems = [], []
    t0 = time.monotonic()

    def stream(tid):
        for i in range(args.chunks):
            engine, lang = REQUESTS[(tid * 3 + i) % len(REQUESTS)]
            text = TEXTS[(tid + i) % len(TEXTS)]
            try:
                wave, rate = nodes.tts_node(mgr, engine, text, lang, device="cpu")
            except Exception as e:  # reported, and fails the run
                problems.append("thread %d: %s: %s" % (tid, type(e).__name__, e))
                continue
            if digest(wave) != reference[(engine, lang, text)]:
                problems.append("thread %d: %s/%s %r: not the reference audio" %
                                (tid, engine, lang, text))
            s = mgr.stats()
            with lock:
                timeline.append((time.monotonic() - t0, tid, "%s/%s" % (engine, lang),
                                 len(wave) / rate, s.devices["cpu"].in_use,
                                 s.devices["cpu"].reserved, s.entries, s.hits, s.evictions))

    threads = [threading.Thread(target=stream, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    print("\n%8s %3s %-22s %6s %13s %9s %7s %5s %9s" % (
        "t (ms)", "thr", "request", "audio", "in use/budget", "reserved", "entries", "hits",
        "evictions"))
    for t, tid, req, secs, in_use, reserved, entries, hits, ev in sorted(timeline):
        print("%8.1f %3d %-22s %5.2fs %6d/%6d %9d %7d %5d %9d" % (
            t * 1000, tid, req, secs, in_use, budget, reserved, entries, hits, ev))
    s = mgr.stats()
    cpu = s.devices["cpu"]
    print("\nfactory calls: %d (%s)" % (sum(calls.values()), ", ".join(
        "%s/%s %d" % (e, m, n) for (e, m), n in sorted(calls.items()))))
    print("loads %d, hits %d, misses %d, evictions %d (%s), failures %d" % (
        s.loads, s.hits, s.misses, s.evictions,
        ", ".join("%s %d" % kv for kv in sorted(evictions.items())), s.failures))
    print("bytes: budget %d, peak %d, in use now %d in %d entries" % (
        budget, cpu.peak, cpu.in_use, s.entries))

    if cpu.peak > budget:
        problems.append("peak %d over the budget %d" % (cpu.peak, budget))
    if sum(calls.values()) != s.loads:
        problems.append("%d factory calls for %d loads" % (sum(calls.values()), s.loads))
    if not s.evictions or not s.hits:
        problems.append("the run should both hit and evict (hits %d, evictions %d)" %
                        (s.hits, s.evictions))
    mgr.close()
    gc.collect()
    if problems:
        print("\nFAILED:\n  " + "\n  ".join(problems))
        return 1
    print("\nok: every result equals the reference run, and the budget held")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
