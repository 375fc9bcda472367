// A frontend's session through the generated TypeScript client (@hey-api/openapi-ts, fetch).
// node build/clients/flow/clients/flow.js http://127.0.0.1:8000
import {
  createHero, createPower, createTeam, deleteHero, deletePower, deleteTeam, listHeroes,
  listPowers, listTeamHeroes, listTeams, login, logout, readHero, readMe, readPower, readTeam,
  refresh, register, updateHero, updatePower, updateTeam,
} from '../build/clients/ts';
import type { Problem } from '../build/clients/ts';
import { client } from '../build/clients/ts/client.gen';

type Result<T> = { data?: T; error?: Problem | unknown; response: Response };

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(what);
}

function ok<T>(result: Result<T>, status: number, what: string): T {
  check(result.response.status === status, `${what}: ${result.response.status} ${JSON.stringify(result.error)}`);
  check(result.data !== undefined || status === 204, `${what}: no body`);
  return result.data as T;
}

function problem(error: Problem | undefined, response: Response, status: number, what: string): Problem {
  check(response.status === status, `${what}: ${response.status}, not ${status}`);
  check(response.headers.get('content-type')?.startsWith('application/problem+json') === true, `${what}: not a problem`);
  check(error !== undefined && error.status === status, `${what}: ${JSON.stringify(error)}`);
  check(typeof error.title === 'string' && typeof error.detail === 'string', `${what}: no title or detail`);
  return error;
}

function etag(response: Response, what: string): string {
  const tag = response.headers.get('etag');
  check(response.status === 200 && tag !== null, `${what}: no ETag`);
  return tag;
}

async function main(baseUrl: string): Promise<void> {
  let token = '';
  client.setConfig({ baseUrl, auth: () => token });
  const email = `ts-${Date.now()}@example.com`;
  const password = 'correct horse battery';

  const user = ok(await register({ body: { email, password } }), 201, 'register');
  check(user.email === email, 'register: email');
  let pair = ok(await login({ body: { username: email, password } }), 200, 'login');
  pair = ok(await refresh({ body: { refresh_token: pair.refresh_token } }), 200, 'refresh');
  token = pair.access_token;
  check(ok(await readMe(), 200, 'me').id === user.id, 'me: id');

  const team = ok(await createTeam({ body: { name: 'Avengers', headquarters: 'New York' } }), 201, 'team');
  const power = ok(await createPower({ body: { name: 'Flight' } }), 201, 'power');
  const hero = ok(
    await createHero({ body: { name: 'Iron Man', secret_name: 'Tony', team_id: team.id, power_ids: [power.id] } }),
    201,
    'hero',
  );
  check(hero.team?.id === team.id && hero.powers.map((p) => p.id).join() === power.id, 'hero: relations');

  check(ok(await listTeams(), 200, 'teams').items.map((t) => t.id).join() === team.id, 'teams: list');
  check(ok(await listHeroes(), 200, 'heroes').items.map((h) => h.id).join() === hero.id, 'heroes: list');
  check(ok(await listPowers(), 200, 'powers').items.map((p) => p.id).join() === power.id, 'powers: list');

  // If-Match with the tag of a GET; the same tag once stale is a 412 problem.
  let tag = etag((await readTeam({ path: { id: team.id } })).response, 'read team');
  const moved = await updateTeam({
    path: { id: team.id }, headers: { 'If-Match': tag }, body: { headquarters: 'Stark Tower' },
  });
  check(ok(moved, 200, 'update team').headquarters === 'Stark Tower', 'update team: body');
  const stale = await updateTeam({
    path: { id: team.id }, headers: { 'If-Match': tag }, body: { headquarters: 'Malibu' },
  });
  problem(stale.error, stale.response, 412, 'stale update');

  tag = etag((await readHero({ path: { id: hero.id } })).response, 'read hero');
  const older = await updateHero({ path: { id: hero.id }, headers: { 'If-Match': tag }, body: { age: 48 } });
  check(ok(older, 200, 'update hero').age === 48, 'update hero: body');
  tag = etag((await readPower({ path: { id: power.id } })).response, 'read power');
  const described = await updatePower({
    path: { id: power.id }, headers: { 'If-Match': tag }, body: { description: 'Up and away' },
  });
  check(ok(described, 200, 'update power').description === 'Up and away', 'update power: body');

  const members = ok(await listTeamHeroes({ path: { id: team.id } }), 200, 'team heroes');
  check(members.items.map((h) => h.id).join() === hero.id, 'team heroes: list');

  const invalid = await createTeam({ body: { name: '', headquarters: 'Nowhere' } });
  const body = problem(invalid.error, invalid.response, 422, 'invalid team');
  check(body.errors?.[0]?.loc.at(-1) === 'name', `invalid team: ${JSON.stringify(body.errors)}`);

  tag = etag((await readHero({ path: { id: hero.id } })).response, 'read hero');
  ok(await deleteHero({ path: { id: hero.id }, headers: { 'If-Match': tag } }), 204, 'delete hero');
  tag = etag((await readPower({ path: { id: power.id } })).response, 'read power');
  ok(await deletePower({ path: { id: power.id }, headers: { 'If-Match': tag } }), 204, 'delete power');
  tag = etag((await readTeam({ path: { id: team.id } })).response, 'read team');
  ok(await deleteTeam({ path: { id: team.id }, headers: { 'If-Match': tag } }), 204, 'delete team');

  ok(await logout({ body: { refresh_token: pair.refresh_token } }), 204, 'logout');
  const gone = await readMe();
  problem(gone.error, gone.response, 401, 'me after logout');
  console.log('typescript client flow: ok');
}

main(process.argv[2] ?? 'http://127.0.0.1:8000').catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
