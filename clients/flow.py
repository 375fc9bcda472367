"""A frontend's session through the generated Python client (`heroes_client`).

python clients/flow.py http://127.0.0.1:8000   # with the generated package on PYTHONPATH
"""

import sys
from typing import Any, TypeVar
from uuid import uuid4

from heroes_client import AuthenticatedClient, Client
from heroes_client.api.auth import login, logout, refresh, register
from heroes_client.api.heroes import create_hero, delete_hero, list_heroes, read_hero, update_hero
from heroes_client.api.powers import (
    create_power,
    delete_power,
    list_powers,
    read_power,
    update_power,
)
from heroes_client.api.teams import (
    create_team,
    delete_team,
    list_team_heroes,
    list_teams,
    read_team,
    update_team,
)
from heroes_client.api.users import read_me
from heroes_client.models import (
    HeroCreate,
    HeroPublic,
    HeroUpdate,
    LoginForm,
    PageHeroPublic,
    PagePowerPublic,
    PageTeamDetail,
    PowerCreate,
    PowerPublic,
    PowerUpdate,
    Problem,
    RefreshRequest,
    TeamCreate,
    TeamDetail,
    TeamUpdate,
    TokenPair,
    UserCreate,
    UserPublic,
)
from heroes_client.types import Response

T = TypeVar("T")


def answer(response: Response[Any], status: int, kind: type[T]) -> T:
    """The parsed body of a response that must have this status and this generated type."""
    assert response.status_code == status, (response.status_code, response.content)
    assert isinstance(response.parsed, kind), (kind, response.parsed)
    return response.parsed


def no_content(response: Response[Any]) -> None:
    assert response.status_code == 204, (response.status_code, response.content)


def problem(response: Response[Any], status: int) -> Problem:
    body = answer(response, status, Problem)
    assert body.status == status and body.title and body.detail, body
    assert response.headers["content-type"].startswith("application/problem+json")
    return body


def etag(response: Response[Any]) -> str:
    assert response.status_code == 200, (response.status_code, response.content)
    return response.headers["etag"]


def main(base_url: str) -> None:
    email, password = f"py-{uuid4().hex[:8]}@example.com", "correct horse battery"
    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)
    me = register.sync_detailed(client=anonymous, body=UserCreate(email=email, password=password))
    assert answer(me, 201, UserPublic).email == email

    form = LoginForm(username=email, password=password)
    pair = answer(login.sync_detailed(client=anonymous, body=form), 200, TokenPair)
    pair = answer(
        refresh.sync_detailed(client=anonymous, body=RefreshRequest(pair.refresh_token)),
        200,
        TokenPair,
    )
    api = AuthenticatedClient(base_url=base_url, token=pair.access_token)
    assert answer(read_me.sync_detailed(client=api), 200, UserPublic).email == email

    team = answer(
        create_team.sync_detailed(client=api, body=TeamCreate("Avengers", "New York")),
        201,
        TeamDetail,
    )
    power = answer(
        create_power.sync_detailed(client=api, body=PowerCreate("Flight")), 201, PowerPublic
    )
    hero = answer(
        create_hero.sync_detailed(
            client=api, body=HeroCreate("Iron Man", "Tony", team_id=team.id, power_ids=[power.id])
        ),
        201,
        HeroPublic,
    )
    assert hero.team is not None and hero.team.id == team.id
    assert [p.id for p in hero.powers] == [power.id]

    assert [
        t.id for t in answer(list_teams.sync_detailed(client=api), 200, PageTeamDetail).items
    ] == [team.id]
    assert [
        h.id for h in answer(list_heroes.sync_detailed(client=api), 200, PageHeroPublic).items
    ] == [hero.id]
    assert [
        p.id for p in answer(list_powers.sync_detailed(client=api), 200, PagePowerPublic).items
    ] == [power.id]

    # Update with If-Match, then the same (now stale) tag is a 412 Problem.
    tag = etag(read_team.sync_detailed(team.id, client=api))
    changed = update_team.sync_detailed(
        team.id, client=api, body=TeamUpdate(headquarters="Stark Tower"), if_match=tag
    )
    assert answer(changed, 200, TeamDetail).headquarters == "Stark Tower"
    stale = update_team.sync_detailed(
        team.id, client=api, body=TeamUpdate(headquarters="Malibu"), if_match=tag
    )
    problem(stale, 412)

    tag = etag(read_hero.sync_detailed(hero.id, client=api))
    changed_hero = update_hero.sync_detailed(
        hero.id, client=api, body=HeroUpdate(age=48), if_match=tag
    )
    assert answer(changed_hero, 200, HeroPublic).age == 48
    tag = etag(read_power.sync_detailed(power.id, client=api))
    changed_power = update_power.sync_detailed(
        power.id, client=api, body=PowerUpdate(description="Up and away"), if_match=tag
    )
    assert answer(changed_power, 200, PowerPublic).description == "Up and away"

    members = answer(list_team_heroes.sync_detailed(team.id, client=api), 200, PageHeroPublic)
    assert [h.id for h in members.items] == [hero.id]

    invalid = problem(create_team.sync_detailed(client=api, body=TeamCreate("", "Nowhere")), 422)
    assert invalid.errors and invalid.errors[0].loc[-1] == "name", invalid

    tag = etag(read_hero.sync_detailed(hero.id, client=api))
    no_content(delete_hero.sync_detailed(hero.id, client=api, if_match=tag))
    tag = etag(read_power.sync_detailed(power.id, client=api))
    no_content(delete_power.sync_detailed(power.id, client=api, if_match=tag))
    tag = etag(read_team.sync_detailed(team.id, client=api))
    no_content(delete_team.sync_detailed(team.id, client=api, if_match=tag))

    no_content(logout.sync_detailed(client=anonymous, body=RefreshRequest(pair.refresh_token)))
    problem(read_me.sync_detailed(client=api), 401)
    print("python client flow: ok")


if __name__ == "__main__":
    main(sys.argv[1])
