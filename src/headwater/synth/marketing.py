"""Marketing events: email campaigns sent about twice a week, with opens >> clicks > campaign views.

Each customer opens each campaign sent after signup with its own engagement probability (a beta
draw, loyal customers higher); after churn they mostly stop opening, which is a usable churn
signal. About 15% of opens lead to a click minutes later, and most clicks to a campaign page view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headwater.domain.enums import MARKETING_EVENT_TYPES
from headwater.synth.customers import Customers
from headwater.synth.spec import DAY_S, WorldSpec, rng_for

CAMPAIGNS_PER_WEEK = 2.0
AUDIENCE_SHARE = 0.6  # share of eligible customers a campaign is sent to
AFTER_CHURN_KEEP = 0.25  # a lapsed customer still opens a quarter as often
OPEN_DELAY_MEDIAN_S, OPEN_DELAY_SIGMA = 3 * 3600, 1.3
CLICK_SHARE_A, CLICK_SHARE_B = 3.0, 17.0  # beta: click-through of opens, mean 15%
VIEW_AFTER_CLICK = 0.7
OPEN, CLICK, VIEW = (MARKETING_EVENT_TYPES.index(t) for t in ("email_open", "email_click", "campaign_view"))


@dataclass(frozen=True)
class MarketingEvents:
    """Clean events sorted by time; event number ``i + 1`` is ``M{i+1:09d}``."""

    number: np.ndarray  # int64 1..N
    customer_id: np.ndarray
    event_type: np.ndarray  # int8 index into MARKETING_EVENT_TYPES
    event_s: np.ndarray
    campaign: np.ndarray  # int64 campaign number, rendered C0001...

    def __len__(self) -> int:
        return len(self.number)


def generate_marketing(customers: Customers, spec: WorldSpec) -> MarketingEvents:
    rng = rng_for(spec, "marketing_events")
    n_campaigns = max(1, round(spec.days * CAMPAIGNS_PER_WEEK / 7))
    send_day = np.sort(rng.integers(0, spec.days, n_campaigns))
    send_s = spec.start_s + send_day * DAY_S + 8 * 3600 + rng.integers(0, 3 * 3600, n_campaigns)

    first = np.searchsorted(send_s, customers.signup_s)  # first campaign sent after signup
    eligible = n_campaigns - first
    opens = rng.binomial(eligible, customers.engagement * AUDIENCE_SHARE)
    who = np.repeat(np.arange(len(customers)), opens)
    campaign = first[who] + (rng.random(len(who)) * eligible[who]).astype(np.int64)
    lapsed = send_s[campaign] > customers.churn_s[who]
    keep = ~lapsed | (rng.random(len(who)) < AFTER_CHURN_KEEP)
    who, campaign = who[keep], campaign[keep]
    open_s = send_s[campaign] + np.exp(
        np.log(OPEN_DELAY_MEDIAN_S) + OPEN_DELAY_SIGMA * rng.standard_normal(len(who))
    ).astype(np.int64)

    click_share = rng.beta(CLICK_SHARE_A, CLICK_SHARE_B, len(customers))
    clicked = rng.random(len(who)) < click_share[who]
    click_s = open_s[clicked] + rng.integers(5, 900, int(clicked.sum()))
    viewed = rng.random(len(click_s)) < VIEW_AFTER_CLICK
    view_s = click_s[viewed] + rng.integers(1, 60, int(viewed.sum()))

    all_who = np.concatenate([who, who[clicked], who[clicked][viewed]])
    all_campaign = np.concatenate([campaign, campaign[clicked], campaign[clicked][viewed]])
    all_s = np.concatenate([open_s, click_s, view_s])
    all_type = np.concatenate(
        [np.full(len(open_s), OPEN), np.full(len(click_s), CLICK), np.full(len(view_s), VIEW)]
    ).astype(np.int8)
    inside = all_s < spec.end_s  # reactions after the range have not happened yet
    order = np.flatnonzero(inside)[np.argsort(all_s[inside], kind="stable")]
    return MarketingEvents(
        number=np.arange(1, len(order) + 1, dtype=np.int64),
        customer_id=customers.customer_id[all_who[order]],
        event_type=all_type[order],
        event_s=all_s[order],
        campaign=all_campaign[order] + 1,
    )
