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


def test_the_position_a_member_is_told_is_the_order_they_are_served():
    """Issue 43: five members with 3:2 photos, then thirty 4:3 photos that would join a running
    batch. The member told position 5 is served 5th, whatever shapes come after."""
    queue = FairQueue()
    for member in range(5):
        queue.push(f"m{member}", f"m{member}-3:2")
    told = {item: position for position, item in enumerate(queue.in_order(), start=1)}
    served = [queue.pop()]  # one worker busy
    for newcomer in range(30):
        queue.push(f"n{newcomer}", f"n{newcomer}-4:3")
        served.append(queue.pop())
        queue.finished(served[-2].split("-")[0])
    assert [served.index(f"m{m}-3:2") + 1 for m in range(5)] == [
        told[f"m{m}-3:2"] for m in range(5)
    ]
