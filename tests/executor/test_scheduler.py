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
