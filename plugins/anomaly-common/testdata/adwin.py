# Reference vectors for the adwin tests: river 0.26.1 (pip install river==0.26.1).
# Reads river_stream.txt (written by ph.py) and prints the indices at which
# drift.ADWIN(**kwargs) reports drift_detected, the width then, and the final window.
from river import drift
xs=[float(x) for x in open("river_stream.txt").read().split(",")]
for kw in [dict(), dict(clock=1), dict(delta=0.1, clock=1), dict(delta=0.002, clock=4, grace_period=20, min_window_length=8)]:
    a=drift.ADWIN(**kw); det=[]; widths=[]
    for i,x in enumerate(xs):
        a.update(x)
        if a.drift_detected: det.append(i); widths.append(a.width)
    print(kw, det, widths, "final width", a.width, repr(a.estimation), repr(a.variance), a.n_detections)
# short hand stream
ys=[0.0]*40+[1.0]*40
for kw in [dict(clock=1)]:
    a=drift.ADWIN(**kw); det=[]
    for i,x in enumerate(ys):
        a.update(x)
        if a.drift_detected: det.append((i,a.width, a.estimation))
    print("step", kw, det, a.width, a.estimation)
