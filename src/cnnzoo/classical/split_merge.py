"""Split and merge (Horowitz & Pavlidis, "Picture segmentation by a directed split-and-merge
procedure", 2nd International Joint Conference on Pattern Recognition, 1974).

Split: the image is a quadtree of square blocks. A block that fails the homogeneity predicate
is cut into its four quadrants, down to ``min_block`` pixels. Merge: adjacent regions whose
union still satisfies the predicate are merged, until no adjacent pair can be. The result is
what the lecture notes ask of a segmentation: every region satisfies the predicate (if
``min_block`` is 1) and no two adjacent regions do together.

How it is computed. The image is padded to a power-of-two square (padding pixels count for
nothing). Block statistics for every level come from a pyramid of running sums built by
2x2 reductions, so the split is decided level by level over whole arrays, never block by
block. The merge works on the region adjacency graph with running sums too: a union's
statistics are sums of its parts', so a merge is tested without reading pixels. Merges run
in rounds, as in Boruvka's minimum-spanning-tree algorithm: each region picks its most
similar passable neighbour (closest mean); a group of regions linked that way merges
whole if its union satisfies the predicate, otherwise the pair that picked each other
merges, with as many of the regions that picked that pair as keep its union homogeneous
(most similar first). Every round with a passable pair merges at least one (the most
similar pair picks itself from both sides), so the loop ends.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from cnnzoo.classical._common import (
    adjacent_label_pairs,
    check_connectivity,
    nominal_range,
    relabel_by_first_appearance,
    unique_pairs,
)
from cnnzoo.classical.predicates import MaxStd, Predicate, RegionStats, as_predicate
from cnnzoo.images.arrays import as_float_image

__all__ = ["merge_adjacent_regions", "quadtree_split", "split_and_merge"]


def split_and_merge(
    image: np.ndarray,
    predicate: Predicate | None = None,
    min_block: int = 1,
    connectivity: int = 4,
) -> np.ndarray:
    """Segment ``image`` by quadtree split and region merge; return an HxW int64 label map.

    Args:
        image: HxW or HxWxC array.
        predicate: the homogeneity test (a :class:`~cnnzoo.classical.predicates.Predicate` or
            a function of ``RegionStats``). Default: ``MaxStd`` at 5% of the dtype's nominal
            range (12.75 for uint8).
        min_block: side, a power of two, below which blocks are not split even if they fail.
        connectivity: 4 or 8; which regions count as adjacent when merging.

    Returns:
        Labels 0..R-1 covering every pixel, in raster order of each region's first pixel.
    """
    values = as_float_image(image)
    rule = _split_merge_predicate(image, predicate)
    check_connectivity(connectivity)
    leaves, leaf_stats = _quadtree_leaves(values, rule, _check_min_block(min_block))
    groups = _merge(leaf_stats, adjacent_label_pairs(leaves, connectivity), rule)
    return relabel_by_first_appearance(groups[leaves])


def quadtree_split(image: np.ndarray, predicate: Predicate | None = None, min_block: int = 1) -> np.ndarray:
    """The split stage alone: the quadtree's leaf blocks as an HxW label map (raster order)."""
    values = as_float_image(image)
    leaves, _ = _quadtree_leaves(values, _split_merge_predicate(image, predicate), _check_min_block(min_block))
    return relabel_by_first_appearance(leaves)


def merge_adjacent_regions(
    image: np.ndarray,
    labels: np.ndarray,
    predicate: Predicate,
    connectivity: int = 4,
) -> np.ndarray:
    """The merge stage alone, on any label map: merge adjacent regions while their union satisfies ``predicate``.

    Returns labels 0..R-1 in raster order of each region's first pixel.
    """
    values = as_float_image(image)
    labels = np.asarray(labels)
    if labels.shape != values.shape[:2]:
        raise ValueError(f"label map shape {labels.shape} does not match the image's {values.shape[:2]}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"label map must hold integers, got dtype {labels.dtype}")
    dense = relabel_by_first_appearance(labels)
    stats = RegionStats.of_labels(values.reshape(-1, values.shape[2]), dense, int(dense.max()) + 1)
    groups = _merge(stats, adjacent_label_pairs(dense, connectivity), as_predicate(predicate))
    return relabel_by_first_appearance(groups[dense])


def _split_merge_predicate(image: np.ndarray, predicate: Predicate | None) -> Predicate:
    if predicate is None:
        return MaxStd(0.05 * nominal_range(image))
    return as_predicate(predicate)


def _check_min_block(min_block: int) -> int:
    if isinstance(min_block, bool) or not isinstance(min_block, (int, np.integer)) or min_block < 1 \
            or min_block & (min_block - 1):
        raise ValueError(f"min_block must be a power of two (1, 2, 4, ...), got {min_block!r}")
    return int(min_block)


# ---------------------------------------------------------------------------------------------
# Split


def _quadtree_leaves(values: np.ndarray, predicate: Predicate, min_block: int) -> tuple[np.ndarray, RegionStats]:
    """Leaf blocks of the quadtree as an HxW map of ids 0..L-1, and the statistics of each leaf."""
    height, width, _ = values.shape
    side = 1 << int(np.ceil(np.log2(max(height, width))))
    min_block = min(min_block, side)
    pyramid = _block_pyramid(values, side, min_block)

    leaf_map = np.full((side, side), -1, dtype=np.int64)
    leaf_stats: list[RegionStats] = []
    num_leaves = 0
    active = np.ones((1, 1), dtype=bool)  # the blocks of the current level still to be decided
    size = side
    while True:
        level = pyramid[size]
        rows, cols = np.nonzero(active & (level.count > 0))  # blocks wholly in the padding vanish
        stats = level.take((rows, cols))
        is_leaf = np.ones(len(rows), dtype=bool) if size == min_block else predicate.holds(stats)
        leaf_ids = np.full(active.shape, -1, dtype=np.int64)
        leaf_ids[rows[is_leaf], cols[is_leaf]] = np.arange(num_leaves, num_leaves + is_leaf.sum())
        num_leaves += int(is_leaf.sum())
        leaf_stats.append(stats.take(np.flatnonzero(is_leaf)))
        # Each pixel lies in exactly one leaf, so painting every level with max() leaves one id.
        np.maximum(leaf_map, np.repeat(np.repeat(leaf_ids, size, axis=0), size, axis=1), out=leaf_map)

        split_rows, split_cols = rows[~is_leaf], cols[~is_leaf]
        if split_rows.size == 0:
            break
        active = np.zeros((2 * active.shape[0], 2 * active.shape[1]), dtype=bool)
        for dr in (0, 1):
            for dc in (0, 1):
                active[2 * split_rows + dr, 2 * split_cols + dc] = True
        size //= 2

    stats = leaf_stats[0]
    for more in leaf_stats[1:]:
        stats = stats.concat(more)
    return leaf_map[:height, :width], stats


class _Level:
    """Running sums of every block of one quadtree level, as (n, n) and (n, n, C) grids."""

    def __init__(self, count, total, total_sq, minimum, maximum) -> None:
        self.count, self.total, self.total_sq, self.minimum, self.maximum = count, total, total_sq, minimum, maximum

    def take(self, cells: tuple[np.ndarray, np.ndarray]) -> RegionStats:
        return RegionStats(self.count[cells], self.total[cells], self.total_sq[cells],
                           self.minimum[cells], self.maximum[cells])

    def coarser(self, factor: int) -> _Level:
        """The level whose blocks are factor x factor groups of this level's blocks."""
        n = self.count.shape[0] // factor

        def blocks(grid: np.ndarray) -> np.ndarray:
            return grid.reshape(n, factor, n, factor, *grid.shape[2:])

        return _Level(blocks(self.count).sum(axis=(1, 3)), blocks(self.total).sum(axis=(1, 3)),
                      blocks(self.total_sq).sum(axis=(1, 3)), blocks(self.minimum).min(axis=(1, 3)),
                      blocks(self.maximum).max(axis=(1, 3)))


def _block_pyramid(values: np.ndarray, side: int, min_block: int) -> dict[int, _Level]:
    """Block statistics for every block size from ``min_block`` to ``side``."""
    height, width, channels = values.shape
    count = np.zeros((side, side))
    count[:height, :width] = 1
    total = np.zeros((side, side, channels))
    total[:height, :width] = values
    # Padding pixels are neutral: they add nothing to sums and never win a min or a max.
    minimum = np.full((side, side, channels), np.inf)
    minimum[:height, :width] = values
    maximum = np.full((side, side, channels), -np.inf)
    maximum[:height, :width] = values
    level = _Level(count, total, total**2, minimum, maximum)
    if min_block > 1:
        level = level.coarser(min_block)
    pyramid = {min_block: level}
    size = min_block
    while size < side:
        level = level.coarser(2)
        size *= 2
        pyramid[size] = level
    return pyramid


# ---------------------------------------------------------------------------------------------
# Merge


def _merge(stats: RegionStats, edges: np.ndarray, predicate: Predicate) -> np.ndarray:
    """Merge adjacent regions while their union satisfies ``predicate``; return each region's group id."""
    group_of = np.arange(len(stats))
    current = stats
    # An edge whose union failed stays failed while neither of its regions changes, so each
    # round tests only the edges that may pass: those that passed before or touch a merged region.
    may_pass = np.ones(len(edges), dtype=bool)
    while may_pass.any():
        a, b = edges[may_pass, 0], edges[may_pass, 1]
        passes = predicate.holds(current.take(a).union(current.take(b)))
        may_pass[np.flatnonzero(may_pass)[~passes]] = False
        if not passes.any():
            break
        a, b = a[passes], b[passes]
        mean = current.mean
        cost = np.sqrt(((mean[a] - mean[b]) ** 2).sum(axis=1))
        best, best_cost = _most_similar_neighbour(a, b, cost, len(current))
        new_id, num_new = _merge_round(current, best, best_cost, predicate)
        merged = np.bincount(new_id, minlength=num_new)[new_id] > 1  # per old region: did it merge?
        group_of = new_id[group_of]
        current = current.grouped(new_id, num_new)
        edges, may_pass = _renumber_edges(edges, may_pass, new_id, merged, num_new)
    return group_of


def _most_similar_neighbour(
    a: np.ndarray, b: np.ndarray, cost: np.ndarray, num_regions: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each region, the passable neighbour with the closest mean (ties: lowest id), -1 if
    none; and the distance between their means (inf if none)."""
    source = np.concatenate([a, b])
    target = np.concatenate([b, a])
    both_costs = np.concatenate([cost, cost])
    order = np.lexsort((target, both_costs, source))
    source, target, both_costs = source[order], target[order], both_costs[order]
    first = np.ones(len(source), dtype=bool)
    first[1:] = source[1:] != source[:-1]
    best = np.full(num_regions, -1, dtype=np.int64)
    best[source[first]] = target[first]
    best_cost = np.full(num_regions, np.inf)
    best_cost[source[first]] = both_costs[first]
    return best, best_cost


def _merge_round(
    current: RegionStats, best: np.ndarray, best_cost: np.ndarray, predicate: Predicate
) -> tuple[np.ndarray, int]:
    """One Boruvka round: each region's new id, and how many regions remain."""
    num = len(current)
    source = np.flatnonzero(best >= 0)
    target = best[source]
    num_groups, group = _components(num, source, target)
    group_holds = predicate.holds(current.grouped(group, num_groups))
    # A pair that picked each other always merges: its union passed the predicate above.
    mutual = best[target] == source
    keep = group_holds[group[source]] | mutual
    keep |= _joins_to_failing_roots(current, source, target, best_cost[source], mutual,
                                    ~group_holds[group[source]], predicate)
    num_new, new_id = _components(num, source[keep], target[keep])
    return new_id, num_new


def _joins_to_failing_roots(
    current: RegionStats, source: np.ndarray, target: np.ndarray, cost: np.ndarray, mutual: np.ndarray,
    in_failing_group: np.ndarray, predicate: Predicate,
) -> np.ndarray:
    """Which edges ``source -> target`` of groups that cannot merge whole may merge anyway.

    Every group is a tree whose root is the pair that picked each other. When the whole group
    fails the predicate, the regions that picked one of the root pair join it one by one, most
    similar first, for as long as the root's union with them holds. (Without this, a large
    region next to thousands of small ones, as salt-and-pepper noise leaves, took them in one
    per round: a 512x512 image with 5% impulse noise needed 3,400 rounds and 25 s.)
    """
    partner = np.full(len(current), -1, dtype=np.int64)  # the other region of a root pair
    partner[source[mutual]] = target[mutual]
    candidate = np.flatnonzero(in_failing_group & ~mutual & (partner[target] >= 0))
    joins = np.zeros(len(source), dtype=bool)
    if candidate.size == 0:
        return joins
    # Candidates grouped by root pair (named by its lower region), most similar first.
    root = np.minimum(target[candidate], partner[target[candidate]])
    order = np.lexsort((source[candidate], cost[candidate], root))
    candidate, root = candidate[order], root[order]
    run = np.cumsum(np.r_[True, root[1:] != root[:-1]]) - 1  # 0, 0, 1, 1, 1, ...: which root pair
    # The root pair with the first k candidates of its group, for every k at once.
    roots = current.take(root).union(current.take(partner[root]))
    joining = current.take(source[candidate])
    prefix = RegionStats(
        roots.count + _running_sum(joining.count[:, None], run)[:, 0],
        roots.total + _running_sum(joining.total, run),
        roots.total_sq + _running_sum(joining.total_sq, run),
        np.minimum(roots.minimum, -_running_max(-joining.minimum, run)),
        np.maximum(roots.maximum, _running_max(joining.maximum, run)),
    )
    failed = ~np.asarray(predicate.holds(prefix), dtype=bool)
    # A candidate joins if no prefix up to and including it failed.
    failed_so_far = np.maximum.accumulate(failed + 2 * run) - 2 * run > 0
    joins[candidate[~failed_so_far]] = True
    return joins


def _running_sum(values: np.ndarray, run: np.ndarray) -> np.ndarray:
    """Cumulative sums down the rows of ``values`` (n, C), restarting where ``run`` (0, 0, 1, ...) steps."""
    totals = np.cumsum(values, axis=0)
    starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
    before = np.zeros((len(starts), values.shape[1]))
    before[1:] = totals[starts[1:] - 1]
    return totals - before[run]


def _running_max(values: np.ndarray, run: np.ndarray) -> np.ndarray:
    """Running maxima down the rows of ``values`` (n, C), restarting where ``run`` (0, 0, 1, ...) steps.

    Computed on ranks: adding ``run * n`` to the ranks keeps each run above the previous ones
    exactly, which adding an offset to the values themselves would not (they would lose digits).
    """
    n = len(values)
    result = np.empty_like(values)
    for channel in range(values.shape[1]):
        order = np.argsort(values[:, channel], kind="stable")
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        running_rank = np.maximum.accumulate(rank + run * n) - run * n
        result[:, channel] = values[order[running_rank], channel]
    return result


def _components(num: int, source: np.ndarray, target: np.ndarray) -> tuple[int, np.ndarray]:
    graph = coo_matrix((np.ones(len(source)), (source, target)), shape=(num, num))
    count, labels = connected_components(graph, directed=False)
    return count, labels.astype(np.int64)


def _renumber_edges(
    edges: np.ndarray, may_pass: np.ndarray, new_id: np.ndarray, merged: np.ndarray, num_new: int
) -> tuple[np.ndarray, np.ndarray]:
    """The adjacency between merged regions, and which edges may now pass.

    Edges between two unmerged regions keep their status and cannot repeat (each end is a
    region of its own). Edges touching a merged region are renamed, self-loops and repeats
    dropped, and marked for testing again.
    """
    touched = merged[edges[:, 0]] | merged[edges[:, 1]]
    kept = new_id[edges[~touched]]
    renamed = unique_pairs(new_id[edges[touched]], num_new)
    kept = np.stack([np.minimum(kept[:, 0], kept[:, 1]), np.maximum(kept[:, 0], kept[:, 1])], axis=1)
    edges = np.concatenate([kept, renamed])
    may_pass = np.concatenate([may_pass[~touched], np.ones(len(renamed), dtype=bool)])
    return edges, may_pass
