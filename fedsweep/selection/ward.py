"""Ward's agglomerative clustering in torch, and cutting its tree by the clusters' total weight.

Ward (1963) merges, at each step, the two clusters whose union least increases the total
within-cluster sum of squares. With squared Euclidean distances the Lance–Williams update

    d(k, i∪j) = ((n_i + n_k) d(k, i) + (n_j + n_k) d(k, j) − n_k d(i, j)) / (n_i + n_j + n_k)

keeps the distances between clusters exact, and Ward's criterion is reducible, so the
nearest-neighbour chain (Murtagh 1983) finds the same tree as the textbook algorithm (scipy's
`linkage(·, "ward")`, up to ties) in O(n²) time and O(n²) memory, instead of O(n³) time: it follows
nearest neighbours until two clusters are each other's nearest, merges them and continues from the
chain's remaining end. Ties go to the lower slot (`argmin`'s first minimum), the chain's previous
element first, so the tree is a pure function of the input.
"""

import torch


def ward_tree(x: torch.Tensor) -> list[tuple[int, int]]:
    """The n − 1 merges of Ward's clustering of the rows of `x`: sorted pairs of node ids (0..n−1 the rows,
    n + t the cluster made by merge t), children before parents."""
    n = x.shape[0]
    x = x.to(torch.float64)
    sq = (x * x).sum(1)
    d = (sq[:, None] + sq[None, :] - 2 * (x @ x.T)).clamp_min(0)
    d.fill_diagonal_(float("inf"))
    size = torch.ones(n, dtype=torch.float64)
    node = list(range(n))  # the tree node each slot holds
    alive = torch.ones(n, dtype=torch.bool)
    merges: list[tuple[int, int]] = []
    chain: list[int] = []
    while len(merges) < n - 1:
        if not chain:
            chain.append(int(alive.nonzero()[0]))
        a = chain[-1]
        b = int(d[a].argmin())
        if len(chain) > 1 and d[a, chain[-2]] <= d[a, b]:
            b = chain[-2]
        if len(chain) == 1 or b != chain[-2]:
            chain.append(b)
            continue
        chain.pop()
        chain.pop()
        lo, hi = min(a, b), max(a, b)
        new = ((size[a] + size) * d[a] + (size[b] + size) * d[b] - size * d[a, b]) / (
            size[a] + size[b] + size
        )
        new[~alive] = float("inf")
        d[lo], d[:, lo] = new, new
        d[hi], d[:, hi] = float("inf"), float("inf")
        d[lo, lo] = float("inf")
        size[lo] = size[a] + size[b]
        alive[hi] = False
        merges.append((min(node[a], node[b]), max(node[a], node[b])))
        node[lo] = n + len(merges) - 1
    return merges


def cut_by_mass(merges: list[tuple[int, int]], masses: torch.Tensor, capacity: int) -> torch.Tensor:
    """int64 [n]: a cluster label per row, for the largest subtrees whose total mass is <= capacity
    (a row heavier than capacity alone is a cluster of its own). Labels are the smallest row of each
    cluster."""
    n = int(masses.numel())
    mass = masses.tolist() + [0] * len(merges)
    for t, (a, b) in enumerate(merges):
        mass[n + t] = mass[a] + mass[b]
    top = list(range(n + len(merges)))  # the cluster node each node belongs to
    for t in range(len(merges) - 1, -1, -1):  # parents before children: masses only grow upwards
        v = n + t
        for child in merges[t]:
            top[child] = top[v] if mass[v] <= capacity else child
    labels = torch.tensor(top[:n], dtype=torch.int64)
    # relabel each cluster by its smallest row
    smallest = torch.full((n + len(merges),), n, dtype=torch.int64)
    smallest.scatter_reduce_(0, labels, torch.arange(n), reduce="amin")
    return smallest[labels]
