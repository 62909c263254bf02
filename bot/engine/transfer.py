"""stylize(): one picture painted alone, coarse to fine (a Painting run to its end)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PIL import Image

from bot.engine.devices import DevicePolicy, policy_for
from bot.engine.memory import MemoryPlan
from bot.engine.objective import StyleCache
from bot.engine.painting import Painting
from bot.engine.params import StyleParams, check_pictures
from bot.engine.progress import ProgressCallback, Result
from bot.engine.vgg import VGG19Features


def stylize(
    model: VGG19Features,
    content: Image.Image,
    styles: Sequence[Image.Image],
    params: StyleParams,
    *,
    on_progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    style_cache: StyleCache | None = None,
    precision: str = "auto",
    policy: DevicePolicy | None = None,
    plan: MemoryPlan | None = None,
) -> Result:
    """Paint `content` in the style of `styles`, coarse to fine.

    `policy` (default: `policy_for(the model's device, precision)`) decides memory format,
    autocast and backend flags; `plan` (bot/engine/memory.py) the L-BFGS history and tiling. Raises Cancelled if `should_cancel()` turns true, NonFiniteLoss if
    J stops being finite, InvalidParams for parameters that cannot work.
    """
    check_pictures(params.validate(), *content.size, [s.size for s in styles])
    policy = policy or policy_for(next(model.parameters()).device, precision)
    painting = Painting(
        model,
        content,
        styles,
        params,
        policy,
        on_progress=on_progress,
        should_cancel=should_cancel,
        style_cache=style_cache,
        plan=plan,
    )
    return painting.run()
