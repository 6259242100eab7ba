"""The three sizes a study's models answer to, named the same way on every page: the HW1P2 limit, the size cap and
the planned size.

- **HW1P2 limit**: the course's rule, at most 20,000,000 parameters for whatever makes a submission, an
  ensemble's members summed (``model.params.DEFAULT_PARAM_LIMIT``);
- **size cap**: the largest model this study may sample (``[study] param_limit``; ``phonetune run`` lowers it
  for its screen to what the time budget can train);
- **planned size**: under ``phonetune run``, the size of the final run the plan chose (its ``final_params``).

A study records them when it is created (``search.study.study_sizes``: user attributes ``hw1p2_limit``, ``size_cap``,
``planned_size``, which the dashboard lists); ``sizes_of`` reads them back, from older studies too.

Example::

    sizes = sizes_of(search_study, fallback_cap=config.param_limit)
    print(sizes.describe())   # "HW1P2 limit 20,000,000 parameters; size cap 231,285 ...; planned size ..."
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from phonetune.model.params import DEFAULT_PARAM_LIMIT
from phonetune.search import attributes as attrs

OLD_CAP_ATTR = "param_limit"  # what studies created before the three names recorded the size cap as


@dataclass(frozen=True)
class Sizes:
    hw1p2_limit: int
    size_cap: int
    planned_size: int | None = None

    def lines(self) -> list[tuple[str, int, str]]:
        """(name, parameters, what it means) of each size, largest first, the cap only when below the limit."""
        found = [("HW1P2 limit", self.hw1p2_limit, "the course's rule for a submission, ensembles summed")]
        if self.size_cap < self.hw1p2_limit:
            found.append(("size cap", self.size_cap, "the largest model a trial of this study may sample"))
        if self.planned_size:
            found.append(("planned size", self.planned_size, "the final run's size, chosen by the plan"))
        return found

    def describe(self) -> str:
        return "; ".join(f"{name} {count:,} parameters ({meaning})" for name, count, meaning in self.lines())


def sizes_of(study: optuna.Study, fallback_cap: int = DEFAULT_PARAM_LIMIT) -> Sizes:
    """The sizes ``study`` recorded; ``fallback_cap`` for a study that recorded no cap."""
    recorded = study.user_attrs
    cap = recorded.get(attrs.SIZE_CAP_ATTR, recorded.get(OLD_CAP_ATTR, fallback_cap))
    planned = recorded.get(attrs.PLANNED_SIZE_ATTR)
    return Sizes(int(recorded.get(attrs.HW1P2_LIMIT_ATTR, DEFAULT_PARAM_LIMIT)), int(cap),
                 int(planned) if planned else None)
