/**
 * The live progress line of `holdfast sim` on a terminal: simulated time,
 * devices online, records appended and accepted, power cuts survived.
 * Redrawn in place at most every 200 ms on stderr; nothing at all when
 * stderr is not a TTY or the output is JSON.
 *
 * Host tool (Node).
 */
import type { FleetProgress } from './runner.ts';

export interface ProgressView {
  update(progress: FleetProgress): void;
  /** Clear the line (before the summary). */
  end(): void;
}

const QUIET: ProgressView = { update: () => undefined, end: () => undefined };

export function progressLine(p: FleetProgress): string {
  const phase = p.phase === 'running' ? `${p.t}/${p.durationSec} simulated s` : p.phase === 'starting' ? 'starting the broker, the ingest and the devices' : p.phase === 'draining' ? 'final drain' : 'checking the books';
  return `sim: ${phase} | online ${p.online}/${p.devices} | appended ${p.appended} | accepted ${p.accepted} | power cuts survived ${p.cutsSurvived} | updates committed ${p.committed ?? 0}, rolled back ${p.rolledBack ?? 0}`;
}

export function progressView(stream: { isTTY?: boolean; columns?: number; write(text: string): boolean }, enabled: boolean): ProgressView {
  if (!enabled || stream.isTTY !== true) return QUIET;
  let last = 0;
  let drawn = false;
  return {
    update(p) {
      const now = performance.now();
      if (p.phase === 'running' && now - last < 200) return;
      last = now;
      const line = progressLine(p).slice(0, Math.max(20, (stream.columns || 120) - 1));
      stream.write(`\r\x1b[K${line}`);
      drawn = true;
    },
    end() {
      if (drawn) stream.write('\r\x1b[K');
      drawn = false;
    },
  };
}
