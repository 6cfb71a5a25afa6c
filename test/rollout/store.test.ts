/**
 * The rollout kept beside the inventory (tools/rollout/store.ts,
 * docs/spec/rollout.md "Where a rollout is kept"): a start and steps round
 * trip; a torn, edited, newer or mismatched state, plan, manifest or trail
 * is refused with one line naming the file, never read as empty; lines a
 * killed step left past the committed trail are ignored and cut off by the
 * next commit.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { CliError } from '../../tools/cli/errors.ts';
import { saveFleet } from '../../tools/fleet/inventory.ts';
import { Rollout } from '../../tools/rollout/engine.ts';
import { commitRollout, createRollout, fleetMembers, listRollouts, loadRollout } from '../../tools/rollout/store.ts';
import { parsePlan } from '../../tools/rollout/plan.ts';
import { fleetOf } from './rollout-world.ts';
import { examplePlan, TARGET } from './rollout-fixtures.ts';

const ID = 'fw-1.4.0';

function refused(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof CliError, `a CliError, got ${String(error)}`);
    assert.ok(!error.message.includes('\n'), 'one line');
    assert.match(error.message, pattern);
    return true;
  });
}

describe('rollout store', () => {
  let dir: string;
  let inventory: string;
  let files: { state: string; trail: string; plan: string; manifest: string };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'holdfast-rollout-store-'));
    inventory = join(dir, 'fleet.json');
    const fleet = fleetOf(200);
    saveFleet(inventory, fleet);
    const planBytes = new TextEncoder().encode(JSON.stringify(examplePlan()));
    const plan = parsePlan(planBytes);
    const { rollout, decisions } = Rollout.start(plan, fleetMembers(fleet), 0);
    const at = createRollout(inventory, { planBytes, plan, manifest: new Uint8Array([1, 2, 3]), rollout, decisions, now: 0 });
    files = { state: join(at, 'state.json'), trail: join(at, 'trail.jsonl'), plan: join(at, 'plan.json'), manifest: join(at, 'manifest.bin') };
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** One step at `now` with every offered device committing. */
  function step(now: number): void {
    const loaded = loadRollout(inventory, ID);
    for (const device of loaded.rollout.offered()) loaded.rollout.observe({ kind: 'committed', device, at: now - 1, imageVersion: TARGET });
    const decisions = loaded.rollout.step(fleetMembers(fleetOf(200)), now);
    commitRollout(loaded, { clock: now, cursor: loaded.state.cursor, badTags: 0 }, decisions);
  }

  it('start and steps round trip; the folder holds only the four files, mode 0600', () => {
    step(100);
    step(800);
    const loaded = loadRollout(inventory, ID);
    assert.equal(loaded.state.clock, 800);
    assert.deepEqual(loaded.trail.map((d) => d.kind), ['started', 'offered', 'stage-reported', 'stage-ended', 'offered']);
    assert.equal(loaded.uncommitted, 0);
    assert.deepEqual(listRollouts(inventory), [ID]);
    for (const f of Object.values(files)) assert.equal(statSync(f).mode & 0o777, 0o600);
    refused(() => createRollout(inventory, { planBytes: readFileSync(files.plan), plan: loaded.plan, manifest: new Uint8Array(1), rollout: loaded.rollout, decisions: [], now: 0 }), /already exists/);
  });

  it('a torn or non-JSON state is refused, never read as empty', () => {
    truncateSync(files.state, 100);
    refused(() => loadRollout(inventory, ID), /state\.json: not JSON/);
    writeFileSync(files.state, '');
    refused(() => loadRollout(inventory, ID), /state\.json: not JSON/);
  });

  it('an edited state is refused by its sha256; a newer or inconsistent one even with a matching sha256', () => {
    const { sha256: _sha, ...state } = JSON.parse(readFileSync(files.state, 'utf8'));
    writeFileSync(files.state, readFileSync(files.state, 'utf8').replace('"badTags":0', '"badTags":1'));
    refused(() => loadRollout(inventory, ID), /state\.json: does not match its sha256/);
    /** Write `body` as the store would (sha256 last). */
    const sealed = (body: object) => {
      const text = JSON.stringify(body);
      writeFileSync(files.state, `${text.slice(0, -1)},"sha256":"${createHash('sha256').update(text).digest('hex')}"}\n`);
    };
    sealed({ ...state, format: 'holdfast-rollout/2' });
    refused(() => loadRollout(inventory, ID), /holdfast-rollout\/1/);
    sealed({ ...state, engine: { ...state.engine, status: 'finished' } });
    refused(() => loadRollout(inventory, ID), /state\.json: rollout state refused: status/);
    sealed({ ...state, engine: { ...state.engine, trail: { seq: 1, hash: state.engine.trail.hash } } });
    refused(() => loadRollout(inventory, ID), /trail\.jsonl: ends at entry 2, the state at 1/);
  });

  it('any flipped byte of the state or the committed trail is refused (or changes nothing)', () => {
    step(100);
    const original = { state: readFileSync(files.state), trail: readFileSync(files.trail) };
    const want = loadRollout(inventory, ID);
    fc.assert(
      fc.property(fc.boolean(), fc.nat(), fc.integer({ min: 1, max: 255 }), (inState, at, xor) => {
        const bytes = Buffer.from(inState ? original.state : original.trail);
        bytes[at % bytes.length] ^= xor;
        writeFileSync(inState ? files.state : files.trail, bytes);
        writeFileSync(inState ? files.trail : files.state, inState ? original.trail : original.state);
        let got;
        try {
          got = loadRollout(inventory, ID);
        } catch (error) {
          assert.ok(error instanceof CliError && !error.message.includes('\n'), `one line: ${String(error)}`);
          return;
        }
        // Only a flip that JSON does not see (the state's final newline into other white space) may load, and then as the same rollout.
        assert.deepEqual(got.state, want.state);
        assert.deepEqual(got.trail, want.trail);
      }),
      { numRuns: 300, seed: Number(process.env.HOLDFAST_SEED ?? 20) },
    );
  });

  it('an edited, removed or truncated trail entry is refused', () => {
    step(100);
    const text = readFileSync(files.trail, 'utf8');
    writeFileSync(files.trail, text.replace('"at":100', '"at":101'));
    refused(() => loadRollout(inventory, ID), /entry 3 does not chain/);
    const lines = text.trimEnd().split('\n');
    writeFileSync(files.trail, `${[lines[0], ...lines.slice(2)].join('\n')}\n`);
    refused(() => loadRollout(inventory, ID), /trail\.jsonl/);
    truncateSync(files.trail, text.length - 10);
    refused(() => loadRollout(inventory, ID), /shorter than the \d+ the state says/);
  });

  it('a changed plan is refused', () => {
    writeFileSync(files.plan, JSON.stringify(examplePlan({ onHalt: 'roll-back' })));
    refused(() => loadRollout(inventory, ID), /plan\.json: changed since the rollout started/);
  });

  it('a changed manifest is refused', () => {
    writeFileSync(files.manifest, new Uint8Array([1, 2, 4]));
    refused(() => loadRollout(inventory, ID), /manifest\.bin: changed since the rollout started/);
  });

  it('lines a killed step left past the committed trail are ignored, then cut off by the next commit', () => {
    const before = readFileSync(files.trail, 'utf8');
    appendFileSync(files.trail, '{"seq":3,"at":50,"kind":"offe');
    const loaded = loadRollout(inventory, ID);
    assert.equal(loaded.uncommitted, 1);
    assert.equal(loaded.trail.length, 2);
    step(100);
    const after = readFileSync(files.trail, 'utf8');
    assert.ok(after.startsWith(before) && !after.includes('"offe\n') && !after.includes('kind":"offe{'));
    assert.equal(loadRollout(inventory, ID).uncommitted, 0);
  });

  it('an unknown rollout id is not found', () => {
    refused(() => loadRollout(inventory, 'nope'), /no rollout nope/);
  });
});
