"""Reference values for the drift detectors' tests, from scipy/numpy.

Run: python3 plugins/drift-common/tools/reference_values.py  (numpy 2.4, scipy 1.17).
Every detector test that quotes a number names the function here it comes from.
The data are integer formulas so Rust builds exactly the same floats.
"""
import numpy as np
from scipy import stats
from scipy.spatial import distance

def ref_data(n=200):   # reference sample: a triangle-ish spread over 0..10
    return np.array([(i * 37 % 101) / 10 for i in range(n)], dtype=float)

def cur_data(n=150, shift=1.5):  # current sample: another spread, shifted
    return np.array([(i * 53 % 97) / 10 + shift for i in range(n)], dtype=float)

def binned(cur, ref, bins=10, edges=None):
    if edges is None:
        edges = np.unique(np.quantile(ref, np.arange(1, bins) / bins))
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=len(edges) + 1)
    r = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=len(edges) + 1)
    return c.astype(float), r.astype(float), edges

def psi(c, r, eps=1e-4):
    p = c / c.sum(); q = r / r.sum()
    p = np.where(p == 0, eps, p); q = np.where(q == 0, eps, q)
    return float(np.sum((p - q) * np.log(p / q)))

print("== psi ==")
for shift in (1.5, 0.0):
    c, r, e = binned(cur_data(shift=shift), ref_data())
    print(f"shift={shift} edges={list(e)} cur={list(c)} ref={list(r)} psi={psi(c, r)!r}")
c, r, _ = binned(cur_data(), ref_data(), edges=np.array([2.0, 4.0, 6.0, 8.0]))
print("fixed edges [2,4,6,8] psi=", repr(psi(c, r)), list(c), list(r))
# histogram buckets: per-bucket counts
hc = np.array([10., 30., 40., 15., 5.]); hb = np.array([30., 40., 20., 8., 2.])
print("buckets psi=", repr(psi(hc, hb)))
print("buckets with empty bin psi=", repr(psi(np.array([0., 50., 50.]), np.array([20., 40., 40.]))))

print("== jensen_shannon ==")
for shift in (1.5, 0.0):
    c, r, _ = binned(cur_data(shift=shift), ref_data())
    print(f"shift={shift} js={distance.jensenshannon(c, r, base=2)!r}")
print("buckets js=", repr(distance.jensenshannon(hc, hb, base=2)))
print("disjoint js=", repr(distance.jensenshannon([1, 0], [0, 1], base=2)))

print("== ks ==")
for (n1, n2, shift) in ((150, 200, 1.5), (150, 200, 0.0), (40, 40, 0.7), (9, 7, 2.0), (60, 45, 0.3)):
    a = cur_data(n1, shift); b = ref_data(n2)
    res = stats.ks_2samp(a, b, method="auto")
    print(f"n1={n1} n2={n2} shift={shift} D={res.statistic!r} p={res.pvalue!r}")

print("== wasserstein ==")
for shift in (1.5, 0.0):
    print(f"shift={shift} w={stats.wasserstein_distance(cur_data(shift=shift), ref_data())!r}")
print("small w=", repr(stats.wasserstein_distance([0, 1, 3], [5, 6, 8])), repr(stats.wasserstein_distance([1, 2, 2, 7], [3, 3])))

print("== chi_square ==")
for cur, base in (([30, 50, 20], [100, 150, 50]), ([60, 30, 10], [100, 150, 50]), ([5, 9], [10, 20]), ([10, 0, 5], [20, 0, 12])):
    t = np.array([cur, base]); t = t[:, t.sum(axis=0) > 0]
    chi2, p, dof, _ = stats.chi2_contingency(t, correction=False)
    print(f"cur={cur} base={base} chi2={chi2!r} p={p!r} dof={dof}")
