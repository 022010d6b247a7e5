import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from bench import email as b
from bench.common import create_database, drop_database
from leadflow.messaging.deliverer import Deliverer

port = b.free_port()
sink = b.start_sink(port)
url = create_database("postgresql", Path(tempfile.mkdtemp()))
try:
    b.populate(url, 5000)
    ctx = b.context(url, port, dkim=False)
    b.queue_broadcast(ctx, 5000)
    d = Deliverer(ctx)
    pr = cProfile.Profile()
    pr.enable()
    t = time.perf_counter()
    n = 0
    while k := d.deliver_due():
        n += k
    pr.disable()
    print("rate", n / (time.perf_counter() - t))
    pstats.Stats(pr).sort_stats("cumulative").print_stats(40)
finally:
    sink.terminate()
    drop_database(url)
