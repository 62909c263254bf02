from bot.executor.scheduler import FairQueue


def test_users_take_turns():
    queue = FairQueue()
    for i in range(3):
        queue.push("a", f"a{i}")
    queue.push("b", "b0")
    queue.push("b", "b1")
    queue.push("c", "c0")
    assert queue.in_order() == ["a0", "b0", "c0", "a1", "b1", "a2"]
    assert [queue.pop() for _ in range(6)] == ["a0", "b0", "c0", "a1", "b1", "a2"]
    assert queue.pop() is None


def test_a_user_with_a_running_job_waits_behind_others():
    queue = FairQueue()
    queue.push("a", "a0")
    assert queue.pop() == "a0"  # running now
    queue.push("a", "a1")
    queue.push("b", "b0")
    assert queue.in_order() == ["b0", "a1"]
    queue.finished("a")
    assert queue.in_order() == ["b0", "a1"]  # a was served already, b never
    assert queue.pop() == "b0"
    queue.push("b", "b1")
    assert queue.in_order() == ["a1", "b1"]  # both served once; b has one running


def test_remove_drain_and_running_counts():
    queue = FairQueue()
    queue.push("b", "b0")
    queue.push("a", "a0")
    queue.push("a", "a1")
    assert queue.remove("a", "a0") and not queue.remove("a", "zz")
    assert queue.in_order() == ["b0", "a1"]  # b arrived first
    queue.mark_running("b")  # a re-attached job of b runs: a goes first now
    assert queue.in_order() == ["a1", "b0"]
    queue.finished("b")
    assert queue.drain() == ["b0", "a1"] and len(queue) == 0


def test_a_clip_costs_its_frames_so_stills_are_not_starved():
    """A member posting 4-frame clips gets one clip for every few stills of another member, not
    one clip for every still (bot/executor/scheduler.py)."""
    queue = FairQueue()
    for i in range(3):
        queue.push("clips", f"c{i}", cost=4)
    for i in range(8):
        queue.push("stills", f"s{i}")
    expected = ["c0", "s0", "s1", "s2", "c1", "s3", "s4", "s5", "c2", "s6", "s7"]
    served = []
    while (item := queue.pop()) is not None:  # one worker: each job ends before the next starts
        served.append(item)
        queue.finished("clips" if item.startswith("c") else "stills", 4 if item[0] == "c" else 1)
    assert served == expected


def test_a_running_clip_counts_its_frames():
    queue = FairQueue()
    queue.push("clips", "c0", cost=6)
    assert queue.pop() == "c0"
    queue.push("clips", "c1", cost=6)
    queue.push("stills", "s0")
    queue.push("stills", "s1")
    # two workers: while the clip runs, the stills member goes first, twice
    assert queue.pop() == "s0"
    assert queue.in_order() == ["s1", "c1"]
    queue.finished("clips", 6)
    queue.finished("stills")
    assert queue.in_order() == ["s1", "c1"]  # the clip's member was served 6 turns' worth


def square(item: str) -> bool:
    """The preference of the tests below: jobs named "...sq" join a running batch."""
    return item.endswith("sq")


def test_a_job_that_joins_a_batch_goes_first_among_users_with_as_little_running():
    queue = FairQueue()
    queue.push("a", "a0-wide")
    queue.push("b", "b0-sq")
    queue.push("c", "c0-wide")
    assert queue.pop(prefer=square) == "b0-sq"  # a is passed over once
    # then the fair order again: b has one running now, a and c none
    assert [queue.pop(prefer=square) for _ in range(2)] == ["a0-wide", "c0-wide"]


def test_the_preference_never_passes_a_user_with_less_work_running():
    queue = FairQueue()
    queue.push("b", "b0-sq")
    assert queue.pop() == "b0-sq"  # b has a job running
    queue.push("b", "b1-sq")
    queue.push("a", "a0-wide")
    assert queue.pop(prefer=square) == "a0-wide"


def test_a_user_is_passed_over_at_most_max_passed_times():
    from bot.executor.scheduler import MAX_PASSED

    queue = FairQueue()
    queue.push("a", "a0-wide")
    served = []
    for i in range(MAX_PASSED + 3):  # a stream of newcomers whose jobs join the batch
        queue.push(f"n{i}", f"n{i}-sq")
        served.append(queue.pop(prefer=square))
        if served[-1] == "a0-wide":
            break
    assert served == [f"n{i}-sq" for i in range(MAX_PASSED)] + ["a0-wide"]


def test_without_a_preferred_job_the_fair_order_holds():
    queue = FairQueue()
    for user in "abc":
        queue.push(user, f"{user}0-wide")
    assert [queue.pop(prefer=square) for _ in range(3)] == ["a0-wide", "b0-wide", "c0-wide"]
