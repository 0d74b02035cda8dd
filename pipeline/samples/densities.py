"""The illustrative carbon density table of the sample generators (``region`` and ``synthetic``) and its sources.

Carbon density per target class, t C/ha (pools: above-ground, below-ground, soil, dead organic matter).
No published four-pool table for all eight classes was found; only grassland is cited. The other rows
are illustrative values for the synthetic regions and say so in their ``source``: not for accounting.

The ``<pool>_sd`` columns (t C/ha) give every pool a standard deviation of 20 % of its value, as InVEST's own
sample uncertainty table does (``carbon_pools_samp_uncertain.csv``): illustrative too, for trying the
``uncertainty:`` draws, not measured spreads.
"""

from __future__ import annotations

import pandas as pd

ILLUSTRATIVE = "illustrative value for the synthetic sample region; not a published figure, not for accounting"
GRASSLAND_SOURCE = (
    "China national grassland means, Sci. Rep. 6:21378 (2016), doi:10.1038/srep21378, Table 1 "
    "'Total' row (0.083, 0.418, 8.163 kg C/m2 x 10); dead organic matter not reported there (0)"
)
#: Standard deviation of each pool as a share of its value (illustrative, as InVEST's sample uncertainty table).
SD_SHARE = 0.2
DENSITIES = {  # class: (name, c_above, c_below, c_soil, c_dead, source)
    1: ("cropland", 5.0, 1.0, 90.0, 1.0, ILLUSTRATIVE),
    2: ("forest", 40.0, 10.0, 130.0, 5.0, ILLUSTRATIVE),
    3: ("grassland", 0.83, 4.18, 81.63, 0.0, GRASSLAND_SOURCE),
    4: ("water and wetland", 0.5, 0.0, 30.0, 0.0, ILLUSTRATIVE),
    5: ("urban construction", 0.5, 0.1, 40.0, 0.0, ILLUSTRATIVE),
    6: ("rural settlement", 2.0, 0.5, 60.0, 0.0, ILLUSTRATIVE),
    7: ("other construction", 0.5, 0.1, 40.0, 0.0, ILLUSTRATIVE),
    8: ("unused", 0.5, 0.1, 20.0, 0.0, ILLUSTRATIVE),
}


def densities_frame() -> pd.DataFrame:
    """The table as the generators write it to ``densities.csv`` (``to_csv(index=False, lineterminator="\\n")``)."""
    pools = ["c_above", "c_below", "c_soil", "c_dead"]
    frame = pd.DataFrame([(c, *v) for c, v in DENSITIES.items()], columns=["class", "name", *pools, "source"])
    for pool in pools:
        frame.insert(frame.columns.get_loc("source"), f"{pool}_sd", (frame[pool] * SD_SHARE).round(3))
    return frame
