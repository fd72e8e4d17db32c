"""A round on the simulated clock (fedsweep/systems/clock.py), on a fixed set of durations."""

from fedsweep.systems.clock import arrivals

SECONDS = {3: 4.0, 5: 1.0, 7: 9.0, 8: 2.5, 9: 2.5}


def test_without_deadline_or_over_selection_the_round_waits_for_the_slowest() -> None:
    out = arrivals(SECONDS, k=5, deadline_s=None)
    assert (out.on_time, out.cut, out.late, out.seconds) == ((3, 5, 7, 8, 9), (), (), 9.0)


def test_a_deadline_cuts_the_slower_clients_and_the_round_lasts_until_it() -> None:
    out = arrivals(SECONDS, k=5, deadline_s=3.0)
    assert (out.on_time, out.cut, out.late, out.seconds) == ((5, 8, 9), (3, 7), (), 3.0)


def test_over_selection_trains_the_first_k_to_finish_and_ends_at_the_kth() -> None:
    # Execute: 5 selected for k = 3; 8 and 9 tie at 2.5 s and are both among the first three
    out = arrivals(SECONDS, k=3, deadline_s=None)
    # Assert
    assert (out.on_time, out.cut, out.late, out.seconds) == ((5, 8, 9), (), (3, 7), 2.5)


def test_ties_at_the_kth_place_go_to_the_lower_client_id() -> None:
    out = arrivals(SECONDS, k=2, deadline_s=None)
    assert (out.on_time, out.late) == ((5, 8), (3, 7, 9))


def test_over_selection_short_of_k_by_the_deadline_cuts_the_rest() -> None:
    # Execute: k = 4 wanted, only 3 finish within 3 s: the round waits until the deadline
    out = arrivals(SECONDS, k=4, deadline_s=3.0)
    # Assert
    assert (out.on_time, out.cut, out.late, out.seconds) == ((5, 8, 9), (3, 7), (), 3.0)


def test_k_on_time_before_the_deadline_makes_the_rest_late_not_cut() -> None:
    out = arrivals(SECONDS, k=2, deadline_s=3.0)
    assert (out.on_time, out.cut, out.late, out.seconds) == ((5, 8), (), (3, 7, 9), 2.5)


def test_nobody_selected() -> None:
    out = arrivals({}, k=3, deadline_s=1.0)
    assert (out.on_time, out.cut, out.late, out.seconds) == ((), (), (), 0.0)
