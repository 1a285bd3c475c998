# Reference vectors for the page_hinkley tests: river 0.26.1 (pip install river==0.26.1).
# Writes river_stream.txt (600 samples, N(0,1) then N(3,1)) and prints the indices at
# which drift.PageHinkley(**kwargs) reports drift_detected, and its final sums.
import random
from river import drift
rng = random.Random(7)
# 0..299: N(0,1); 300..: N(3,1) — rounded to 3 decimals so the stream is easy to embed
xs = [round(rng.gauss(0,1),3) for _ in range(300)] + [round(rng.gauss(3,1),3) for _ in range(300)]
print("stream", xs[:5], len(xs))
for kw in [dict(), dict(threshold=10.0), dict(threshold=10.0, mode="up"), dict(threshold=10.0, mode="down"), dict(min_instances=10, delta=0.05, threshold=5.0, alpha=0.99)]:
    ph = drift.PageHinkley(**kw)
    det=[]
    for i,x in enumerate(xs):
        ph.update(x)
        if ph.drift_detected: det.append(i)
    print(kw, det)
    print("  final", ph._x_mean.n, repr(ph._x_mean.get()), repr(ph._sum_increase), repr(ph._sum_decrease), repr(ph._min_increase), repr(ph._max_decrease))
# descending stream for 'down'
ys = [-x for x in xs]
for kw in [dict(threshold=10.0), dict(threshold=10.0, mode="up"), dict(threshold=10.0, mode="down")]:
    ph = drift.PageHinkley(**kw); det=[]
    for i,x in enumerate(ys):
        ph.update(x)
        if ph.drift_detected: det.append(i)
    print("neg", kw, det)
open("river_stream.txt","w").write(",".join(repr(x) for x in xs))
