"""What deleting a team or a power does to the heroes that refer to it, for the API and the
admin alike. The foreign keys would do the unlinking by themselves (SET NULL, CASCADE), but
losing a team or a power is a change to each hero, so their versions (and ETags) move too."""

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.models import Hero, HeroPowerLink, utcnow


async def leave_team(session: AsyncSession, team_id: uuid.UUID) -> None:
    """The team's heroes stay, without a team."""
    await session.execute(
        update(Hero)
        .where(col(Hero.team_id) == team_id)
        .values(team_id=None, version=Hero.version + 1, updated_at=utcnow())
    )


async def lose_power(session: AsyncSession, power_id: uuid.UUID) -> None:
    """Heroes that had the power are changed; the link rows go with the power."""
    holders = select(col(HeroPowerLink.hero_id)).where(col(HeroPowerLink.power_id) == power_id)
    await session.execute(
        update(Hero)
        .where(col(Hero.id).in_(holders))
        .values(version=Hero.version + 1, updated_at=utcnow())
    )
