/**
 * Where the fleet inventory and its rollouts live (docs/design/scale-out.md,
 * "What lives where"): a `holdfast-fleet/1` file with its rollouts beside
 * it (the default: `--inventory fleet.json`), or a PostgreSQL database
 * (`--db postgres://…`, tools/fleet/store-postgres.ts). Both keep the same
 * promises:
 *
 * - a change is atomic: all of it or nothing, whatever kills the process;
 * - one writer at a time: every read-modify-write runs under the
 *   inventory's lock (`withLock`), so two runs never lose each other's
 *   changes;
 * - damaged, unknown or newer state is refused with one line, never read
 *   as empty.
 *
 * Host tool (Node).
 */
import { UsageError } from '../cli/errors.ts';
import { isPostgresUrl } from '../ingest/store-postgres.ts';
import { fileRolloutStore, type RolloutStore } from '../rollout/store.ts';
import { acquireFleetLock, loadFleet, saveFleet, type Fleet } from './inventory.ts';

/** Inside `withLock`: the inventory as it is now, and its replacement. */
export interface FleetTx {
  /** The inventory; with `allowMissing` (default true) an inventory that does not exist yet is empty. */
  load(allowMissing?: boolean): Promise<Fleet>;
  /** Replace the inventory (checked first: an invalid one is never saved); one atomic change. */
  save(fleet: Fleet): Promise<void>;
}

export interface FleetStore {
  /** The inventory's file, or `postgres://host:port/database` (never a password). */
  readonly where: string;
  readonly kind: 'file' | 'postgres';
  /** The inventory as committed (no lock); a missing one is refused unless `allowMissing`. */
  read(options?: { allowMissing?: boolean }): Promise<Fleet>;
  /** Run `run` as the only writer of the inventory and of its rollouts. */
  withLock<T>(run: (tx: FleetTx) => Promise<T> | T): Promise<T>;
  /** The rollouts kept with this inventory. */
  readonly rollouts: RolloutStore;
  close(): Promise<void>;
}

/** The file backend: tools/fleet/inventory.ts's file, its `<file>.lock`, and `<file>.rollouts/`. */
export function fileFleetStore(path: string): FleetStore {
  return {
    where: path,
    kind: 'file',
    read: async (options = {}) => loadFleet(path, options),
    withLock: async <T>(run: (tx: FleetTx) => Promise<T> | T): Promise<T> => {
      const release = acquireFleetLock(path);
      try {
        return await run({ load: async (allowMissing = true) => loadFleet(path, { allowMissing }), save: async (fleet) => saveFleet(path, fleet) });
      } finally {
        release();
      }
    },
    rollouts: fileRolloutStore(path),
    close: async () => undefined,
  };
}

/** The backend the flags name: `--db <url>` (PostgreSQL) or `--inventory <file>`; both given is a usage error. */
export async function openFleetStore(flags: { inventory: string; db?: string }, inventoryGiven: boolean): Promise<FleetStore> {
  if (flags.db === undefined) return fileFleetStore(flags.inventory);
  if (inventoryGiven) throw new UsageError('--db and --inventory name two different inventories: expected one of them', { field: '--db' });
  if (!isPostgresUrl(flags.db)) throw new UsageError('expected a postgres:// or postgresql:// URL', { field: '--db' });
  const { PostgresFleetStore } = await import('./store-postgres.ts');
  return PostgresFleetStore.open(flags.db);
}

/** Run `run` with the store the flags name, closing it afterwards. */
export async function withFleetStore<T>(flags: { inventory: string; db?: string }, inventoryGiven: boolean, run: (store: FleetStore) => Promise<T>): Promise<T> {
  const store = await openFleetStore(flags, inventoryGiven);
  try {
    return await run(store);
  } finally {
    await store.close();
  }
}
