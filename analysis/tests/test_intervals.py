import numpy as np

from analysis import intervals


def nest(ranges, groups=None):
    s = np.array([r[0] for r in ranges], float)
    e = np.array([r[1] for r in ranges], float)
    g = np.zeros(len(s), int) if groups is None else np.array(groups)
    depth, parent = intervals.nesting(s, e, g)
    return depth.tolist(), parent.tolist(), intervals.self_time(s, e, parent).tolist()


def test_nested_ranges_get_depth_parent_and_self_time():
    # step [0,10) > schedule [1,4) > lookup [1,2); forward [4,9); listed out of order
    depth, parent, self_t = nest([(4, 9), (0, 10), (1, 2), (1, 4)])
    assert depth == [1, 0, 2, 1]
    assert parent == [1, -1, 3, 1]
    assert self_t == [5, 2, 1, 2]
    assert sum(self_t) == 10  # self times add up to the covered time


def test_touching_ranges_are_siblings_and_groups_do_not_nest():
    depth, parent, _ = nest([(0, 5), (5, 10)])
    assert depth == [0, 0] and parent == [-1, -1]
    depth, parent, _ = nest([(0, 10), (2, 3)], groups=[0, 1])
    assert depth == [0, 0] and parent == [-1, -1]


def test_equal_bounds_zero_length_and_partial_overlap():
    depth, parent, self_t = nest([(0, 10), (0, 10)])  # identical: one is the parent
    assert sorted(depth) == [0, 1] and sorted(self_t) == [0, 10]
    depth, parent, self_t = nest([(0, 10), (3, 3)])
    assert depth == [0, 1] and self_t == [10, 0]
    depth, parent, self_t = nest([(0, 10), (5, 15)])  # not nested: child time clipped to parent
    assert parent == [-1, 0] and self_t == [5, 10]


def test_merge_union_and_overlap():
    s, e = intervals.merge(np.array([5, 0, 2, 20.0]), np.array([8, 3, 4, 30.0]))
    assert s.tolist() == [0, 5, 20] and e.tolist() == [4, 8, 30]
    assert intervals.union_length(np.array([0, 1.0]), np.array([2, 3.0])) == 3
    ov = intervals.overlap_with_union(np.array([-5, 3, 9, 25.0]), np.array([1, 6, 10, 40.0]), s, e)
    assert ov.tolist() == [1, 2, 0, 5]
    assert intervals.overlap_with_union(np.array([0.0]), np.array([1.0]), np.array([]), np.array([])).tolist() == [0]
