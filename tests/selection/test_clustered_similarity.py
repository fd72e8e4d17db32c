"""Clustered sampling, Algorithm 2: similar clients share a bucket; unbiased; state kept and
checkpointable."""

import torch

from fedsweep.rng import generator
from fedsweep.selection.base import ClientFeedback, Population
from fedsweep.selection.clustered_similarity import ClusteredSimilarity, similarity_buckets
from fedsweep.selection.ward import cut_by_mass, ward_tree
from fedsweep.weights import from_bytes, to_bytes

SIZES = torch.tensor([10, 10, 10, 10, 10, 10], dtype=torch.int64)
# clients 0-2 move one way, 3-5 the other (up to noise)
SKETCHES = torch.tensor([[1.0, 0.0], [2.0, 0.1], [1.0, -0.1], [0.0, 1.0], [0.1, 3.0], [-0.1, 1.0]])


def test_ward_tree_and_cut_by_hand() -> None:
    # Prepare: points 0, 1 on a line, 10 and 12 far away
    x = torch.tensor([[0.0], [1.0], [10.0], [12.0]])
    # Execute
    merges = ward_tree(x)
    # Assert: {0,1} (cost 0.5), then {10,12} (cost 2), then the two (node 4 and 5)
    assert merges == [(0, 1), (2, 3), (4, 5)]
    assert cut_by_mass(merges, torch.tensor([1, 1, 1, 1]), 2).tolist() == [0, 0, 2, 2]
    assert cut_by_mass(merges, torch.tensor([1, 1, 1, 1]), 4).tolist() == [0, 0, 0, 0]
    assert cut_by_mass(merges, torch.tensor([1, 3, 1, 1]), 2).tolist() == [0, 1, 2, 2]  # 1 is too heavy


def test_similar_clients_share_a_bucket() -> None:
    # Prepare: m = 2, capacity 60, every client has mass 20: the cut gives {0,1,2} and {3,4,5}
    seen = torch.ones(6, dtype=torch.bool)
    # Execute
    r = similarity_buckets(torch.arange(6), SIZES, SKETCHES, seen, 2, "arccos").distributions(6)
    # Assert: one bucket per direction, each uniform (equal sizes); Σ_k r_ki = m·p_i
    assert torch.allclose(
        r, torch.tensor([[1 / 3] * 3 + [0.0] * 3, [0.0] * 3 + [1 / 3] * 3], dtype=torch.float64)
    )
    assert torch.allclose(r.sum(0), 2 * SIZES.double() / 60)


def test_arccos_groups_by_direction_and_l2_by_position() -> None:
    # Prepare: 0 and 2 point along x, 1 and 3 along y; 0 and 1 are short, 2 and 3 long. m = 2, capacity 40,
    # mass 20 each: a cluster holds at most 2 clients
    sketches = torch.tensor([[1.0, 0.0], [0.0, 1.0], [10.0, 0.0], [0.0, 10.0]])
    sizes, seen = torch.tensor([10, 10, 10, 10]), torch.ones(4, dtype=torch.bool)
    # Execute
    angle = similarity_buckets(torch.arange(4), sizes, sketches, seen, 2, "arccos").distributions(4)
    l2 = similarity_buckets(torch.arange(4), sizes, sketches, seen, 2, "l2").distributions(4)
    # Assert: arccos: {0, 2} and {1, 3}. L2: Ward joins {0, 1} (distance² 2), then {0, 1} with 2
    # (Lance–Williams (2·81 + 2·101 − 2)/3 ≈ 120.7 < 200) which is too heavy: clusters {0, 1}, {2}, {3};
    # the two heaviest, {3} then {0, 1}, get buckets, and {2} fills bucket 0
    assert angle.tolist() == [[0.5, 0.0, 0.5, 0.0], [0.0, 0.5, 0.0, 0.5]]
    assert l2.tolist() == [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 0.0, 0.0]]


def test_clients_without_a_sketch_fill_by_size() -> None:
    # Prepare: only clients 0 and 3 have trained; m = 3, sizes 10 each → capacity 60, masses 30
    seen = torch.tensor([True, False, False, True, False, False])
    sizes = torch.tensor([10, 20, 10, 10, 5, 5])
    # Execute: 0 and 3 (mass 30 + 30 = 60 ≤ 60 together) form one cluster; the rest fill by size
    b = similarity_buckets(torch.arange(6), sizes, SKETCHES, seen, 3, "arccos")
    r = b.distributions(6) * 60
    # Assert: bucket 0 = {0, 3}; the fillers 1 (60), 2 (30), 4 (15), 5 (15) fill buckets 1 and 2
    assert b.own_clients.tolist() == [0, 3] and b.filler_clients.tolist() == [1, 2, 4, 5]
    assert r.tolist() == [[30, 0, 0, 30, 0, 0], [0, 60, 0, 0, 0, 0], [0, 0, 30, 0, 15, 15]]


def test_selection_draws_one_per_cluster_with_multiplicity_weights() -> None:
    # Prepare
    selector, state = ClusteredSimilarity(sketch_dim=2), {}
    population = Population(num_samples=SIZES)
    feedback = [ClientFeedback(client=c, num_samples=10, sketch=SKETCHES[c]) for c in range(6)]
    state = selector.select(
        round=1,
        available=torch.arange(6),
        k=2,
        generator=generator(0, "s", 1),
        state=state,
        population=population,
    ).state
    state = selector.observe(round=1, feedback=feedback, state=state)
    # Execute
    picks = [
        selector.select(
            round=r,
            available=torch.arange(6),
            k=2,
            generator=generator(0, "s", r),
            state=state,
            population=population,
        )
        for r in range(2, 40)
    ]
    # Assert: always one of 0-2 and one of 3-5
    assert all(len(p.clients) == 2 and p.clients[0] < 3 <= p.clients[1] for p in picks)
    assert all(p.weights == dict.fromkeys(p.clients, 1.0) for p in picks)
    assert state["seen"].tolist() == [1] * 6 and torch.equal(state["sketch"], SKETCHES)


def test_observe_keeps_the_last_sketch_and_state_round_trips_through_safetensors() -> None:
    # Prepare
    selector = ClusteredSimilarity(sketch_dim=2)
    state = selector.initial_state(6)
    # Execute: client 1 trains in round 1 and 3; client 2 fails in round 3
    state = selector.observe(
        round=1, feedback=[ClientFeedback(client=1, sketch=torch.tensor([1.0, 2.0]))], state=state
    )
    before = {k: v.clone() for k, v in state.items()}
    given = state
    state = selector.observe(
        round=3,
        feedback=[
            ClientFeedback(client=1, sketch=torch.tensor([3.0, 4.0])),
            ClientFeedback(client=2, failure="transient"),
        ],
        state=state,
    )
    back = from_bytes(to_bytes(state))
    # Assert: updated in place, the reporting client's rows only (no copy of the table)
    others = torch.tensor([0, 2, 3, 4, 5])
    assert state is given and before["sketch"][1].tolist() == [1.0, 2.0]
    assert torch.equal(state["sketch"][others], before["sketch"][others])
    assert state["seen"].tolist() == [0, 3, 0, 0, 0, 0] and state["sketch"][1].tolist() == [3.0, 4.0]
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)


def test_first_round_is_algorithm_1_and_deterministic() -> None:
    # Prepare
    selector = ClusteredSimilarity()
    population = Population(num_samples=torch.tensor([5, 1, 1, 1, 2]))
    # Execute
    runs = [
        [
            selector.select(
                round=r,
                available=torch.arange(5),
                k=2,
                generator=generator(0, "s", r),
                state={},
                population=population,
            ).clients
            for r in range(10)
        ]
        for _ in range(2)
    ]
    # Assert: client 0 (p = 1/2 = 1/m) is always in
    assert runs[0] == runs[1] and all(0 in c for c in runs[0])


def test_past_max_clustered_a_sample_is_clustered_and_the_rest_fill_unbiased() -> None:
    # Prepare: all 6 clients have a sketch, at most 3 are clustered; m = 2, capacity 60
    seen = torch.ones(6, dtype=torch.bool)
    # Execute
    b = similarity_buckets(
        torch.arange(6), SIZES, SKETCHES, seen, 2, "arccos", max_clustered=3, generator=generator(0, "s", 2)
    )
    again = similarity_buckets(
        torch.arange(6), SIZES, SKETCHES, seen, 2, "arccos", max_clustered=3, generator=generator(0, "s", 2)
    )
    r = b.distributions(6)
    # Assert: at most 3 clients in clusters of their own, every client somewhere, Σ_k r_ki = m·p_i still,
    # and the sample is a pure function of the generator
    assert b.own_clients.numel() <= 3 and b.filler_clients.numel() >= 3
    assert sorted(b.own_clients.tolist() + b.filler_clients.tolist()) == list(range(6))
    assert torch.allclose(r.sum(0), 2 * SIZES.double() / 60)
    assert torch.equal(b.own_clients, again.own_clients) and torch.equal(
        b.filler_clients, again.filler_clients
    )


def test_at_most_max_clustered_clients_give_exactly_algorithm_2() -> None:
    # Prepare
    seen = torch.ones(6, dtype=torch.bool)
    g = generator(0, "s", 2)
    # Execute
    exact = similarity_buckets(torch.arange(6), SIZES, SKETCHES, seen, 2, "arccos").distributions(6)
    capped = similarity_buckets(
        torch.arange(6), SIZES, SKETCHES, seen, 2, "arccos", max_clustered=6, generator=g
    ).distributions(6)
    # Assert: the same buckets, and nothing was drawn
    assert torch.equal(exact, capped)
    assert torch.equal(g.get_state(), generator(0, "s", 2).get_state())
