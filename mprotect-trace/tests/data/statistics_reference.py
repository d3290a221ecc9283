#!/usr/bin/env python3
"""Reference values for src/statistics.rs, computed independently (SciPy 1.17.1,
numpy 2.4.6, brute-force enumeration). Run: python3 tests/data/statistics_reference.py"""
import numpy as np, itertools, math
from scipy.stats import t
from scipy.stats import mannwhitneyu as m, mannwhitneyu, permutation_test, rankdata
cases=[([1,2,3,4,5],[6,7,8,9,10]),([152.1,148.3,160.2,139.9,171.0],[149.5,158.8,162.4,151.0,144.7]),([10,11,12],[13,14,15,16]),([3.1,2.7,4.4,3.9],[4.8,5.2,3.0,6.1,5.5,4.9])]
for a,b in cases:
    r=m(a,b,method="exact"); print(r.statistic, repr(r.pvalue))
u = lambda x, y, axis=-1: rankdata(np.concatenate([x, y],axis=axis),axis=axis)[...,:x.shape[-1]].sum(axis=-1) - x.shape[-1]*(x.shape[-1]+1)/2
for a,b in [([5,5,6,7],[6,7,7,8,8]),([4,4,4],[4,4])]:
    a=np.array(a,float);b=np.array(b,float)
    r=permutation_test((a,b), u, permutation_type="independent", alternative="two-sided", n_resamples=np.inf, vectorized=True)
    print(r.statistic, repr(r.pvalue))
a=np.array([100+ (i%9)*2.5-10 for i in range(40)]); b=np.array([104+(i%7)*3.0-9 for i in range(35)])
r=m(a,b,method="asymptotic"); print(r.statistic, repr(r.pvalue))

def ucdf(m,n):
    N=m+n; counts={}
    for comb in itertools.combinations(range(1,N+1),m):
        u=sum(comb)-m*(m+1)//2; counts[u]=counts.get(u,0)+1
    tot=math.comb(N,m); cum=[];r=0
    for u in range(m*n+1): r+=counts.get(u,0); cum.append(r/tot)
    return cum
def hl(a,b,alpha=0.05):
    d=np.sort([y-x for y in b for x in a]); est=np.median(d)
    cum=ucdf(len(a),len(b)); cs=[c for c,p in enumerate(cum) if p<=alpha/2]
    if not cs: return est,None
    c=max(cs); return est,(d[c],d[len(d)-1-c],1-2*cum[c])
for a,b in [([152.1,148.3,160.2,139.9,171.0],[149.5,158.8,162.4,151.0,144.7]),([1,2,3,4,5],[6,7,8,9,10]),([10,11],[13,14]),([3.1,2.7,4.4,3.9],[4.8,5.2,3.0,6.1,5.5,4.9])]:
    print(a,b,hl(a,b))
def mde(a,b,alpha=0.05,power=0.8):
    m,n=len(a),len(b); e=3/math.pi
    s=math.sqrt(((m-1)*np.var(a,ddof=1)+(n-1)*np.var(b,ddof=1))/(m+n-2))
    me,ne=m*e,n*e; df=me+ne-2
    return (t.ppf(1-alpha/2,df)+t.ppf(power,df))*s*math.sqrt(1/me+1/ne), s
print(repr(mde([152.1,148.3,160.2,139.9,171.0],[149.5,158.8,162.4,151.0,144.7])))
print(repr(mde([1.0,1.2,0.9,1.1],[1.3,1.0,1.25,0.95,1.05])))

# repeated_runs (tests/compare.rs): run medians 200,202,198,201,199 vs 230,228,233,231,229
a = np.array([200, 202, 198, 201, 199.]); b = np.array([230, 228, 233, 231, 229.])
la, lb = np.log(a), np.log(b)
d = np.sort([y - x for y in lb for x in la])
print("repeated_runs ratio", math.exp(np.median(d)), "interval", math.exp(d[2]), math.exp(d[-3]))
e = 3 / math.pi; me, ne = 5 * e, 5 * e; df = me + ne - 2
s = math.sqrt((4 * np.var(la, ddof=1) + 4 * np.var(lb, ddof=1)) / 8)
print("repeated_runs detectable", math.exp((t.ppf(.975, df) + t.ppf(.8, df)) * s * math.sqrt(1 / me + 1 / ne)) - 1)
print("repeated_runs p", mannwhitneyu(a, b, method="exact").pvalue)

# bisect's step classifier (src/bisect/classify.rs): each candidate's rank
# tests against good's runs (first) and bad's (second). SciPy 1.17.1:
# like_bad 0.02857 0.88571; like_good 0.88571 0.02857; unknown 0.02857 0.05714;
# halfway 0.02857 0.02857; few 0.13333 0.8; faster (good and bad swapped) 0.02857 0.2
G = [281.1, 281.5, 281.6, 281.7]; B = [303.2, 303.4, 303.5, 303.9]
for name, c in [("like_bad", [303.0, 303.3, 303.6, 303.8]), ("like_good", [281.0, 281.2, 281.55, 281.8]),
                ("unknown", [281.9, 303.3, 282.0, 282.1]), ("halfway", [292.0, 292.5, 292.6, 293.0]),
                ("few", [303.3, 303.4])]:
    print("bisect", name, mannwhitneyu(G, c, method="exact").pvalue, mannwhitneyu(c, B, method="exact").pvalue)
print("bisect faster", mannwhitneyu(B, [281.0, 281.2, 281.3, 281.4], method="exact").pvalue)
