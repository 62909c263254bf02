"""The memory estimate: the figures it rests on, and the largest size that fits."""

from bot.engine.memory import job_bytes, largest_size


def test_the_estimate_follows_the_pixels_and_the_optimiser_state():
    lbfgs = job_bytes(512 * 512, optimizer="lbfgs", history=100)
    adam = job_bytes(512 * 512, optimizer="adam", history=100)
    # L-BFGS's 100 pairs cost as much as the activations: 2.4 KB per pixel
    assert lbfgs - adam == 512 * 512 * (2400 - 24)
    assert job_bytes(1024 * 1024, optimizer="lbfgs", history=100) == 4 * lbfgs
    assert job_bytes(512 * 512, optimizer="adam", history=100, precision="bf16") < adam


def test_largest_size_for_an_8_gb_card():
    budget = 8 * 2**30
    square = largest_size(budget, 1, 1, optimizer="lbfgs", history=100)
    wide = largest_size(budget, 16, 9, optimizer="lbfgs", history=100)
    assert square % 64 == 0 and wide > square
    assert job_bytes(square**2, optimizer="lbfgs", history=100) <= budget
    assert job_bytes((square + 64) ** 2, optimizer="lbfgs", history=100) > budget
    assert largest_size(1000, 1, 1, optimizer="lbfgs", history=100) == 0
    print(
        f"8 GB: L-BFGS {square} px square, Adam {largest_size(budget, 1, 1, optimizer='adam', history=100)} px"
    )
