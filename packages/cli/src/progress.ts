/**
 * Progress of long work (import, export, unpack, pull, push): a bar with bytes, rate and ETA on a terminal
 * (stderr), one per blob for transfers; plain lines when stderr is not a terminal; nothing with --quiet.
 */
import { MultiBar, SingleBar } from 'cli-progress';
import type { TransferEvent } from '@strata/registry';

/** Bytes for people: 1.5 MiB. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export interface Progress {
  /** Reports `done` of `total` bytes (total unknown: undefined). */
  update(done: number, total: number | undefined): void;
  stop(): void;
}

const SILENT: Progress = { update: () => {}, stop: () => {} };

/** `[████░░░░] done / total  rate/s  ETA Ns` of work begun at `started` (ms). */
function barText(done: number, total: number | undefined, started: number): string {
  const seconds = Math.max((Date.now() - started) / 1000, 0.001);
  const rate = done / seconds;
  const width = 24;
  const filled = total ? Math.min(width, Math.round((done / total) * width)) : 0;
  // No estimate from the first half second: the rate is still mostly start-up.
  const eta = total && rate > 0 && seconds >= 0.5 ? Math.max(0, Math.round((total - done) / rate)) : undefined;
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${humanBytes(done)}${total ? ` / ${humanBytes(total)}` : ''}  ${humanBytes(rate)}/s${eta !== undefined ? `  ETA ${eta}s` : ''}`;
}

/** A progress reporter for `label`. */
export function progress(label: string, options: { quiet?: boolean } = {}): Progress {
  if (options.quiet) return SILENT;
  const started = Date.now();
  if (!process.stderr.isTTY) {
    let reported = -1;
    return {
      update(done, total) {
        if (total === undefined || total === 0) return;
        const tenth = Math.floor((done / total) * 10);
        if (tenth <= reported) return;
        reported = tenth;
        process.stderr.write(`${label}: ${tenth * 10}% (${humanBytes(done)} of ${humanBytes(total)})\n`);
      },
      stop() {},
    };
  }
  let bar: SingleBar | undefined;
  return {
    update(done, total) {
      if (bar === undefined) {
        bar = new SingleBar({
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: true,
          format: (_options, params) => `${label} ${barText(params.value, params.total > 0 ? params.total : undefined, started)}`,
        });
        bar.start(total ?? 0, done);
      }
      if (total !== undefined) bar.setTotal(total);
      bar.update(done);
    },
    stop() {
      bar?.stop();
    },
  };
}

/** A line of the transfer display: the blob's short digest and its bar, or its state once skipped or done. */
function transferLine(id: string, state: string, done: number, size: number, started: number): string {
  return state === 'active' ? `${id}  ${barText(done, size, started)}` : `${id}  ${state.padEnd(8)} ${humanBytes(size)}`;
}

/**
 * Progress of a pull or push: on a terminal, one line per blob ("exists" and "mounted" for the skipped);
 * otherwise a plain line as each blob starts, ends or is skipped, and for each retry.
 */
export function transferProgress(options: { quiet?: boolean } = {}): { onProgress: (event: TransferEvent) => void; stop(): void } {
  if (options.quiet) return { onProgress: () => {}, stop: () => {} };
  const short = (digest: string) => digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 13);
  if (!process.stderr.isTTY) {
    return {
      onProgress(event) {
        if (event.kind === 'retry') process.stderr.write(`retry ${event.attempt} of ${event.what} in ${event.waitMs} ms: ${event.reason}\n`);
        else if (event.kind === 'blob') process.stderr.write(`${short(event.digest)}: ${event.state === 'start' ? 'transferring' : event.state} (${humanBytes(event.size)})\n`);
      },
      stop() {},
    };
  }
  const multi = new MultiBar({ stream: process.stderr, hideCursor: true, clearOnComplete: false, format: (_o, params, payload: { line: () => string }) => payload.line() });
  const rows = new Map<string, { bar: ReturnType<MultiBar['create']>; state: string; done: number; started: number }>();
  return {
    onProgress(event) {
      if (event.kind === 'retry') {
        multi.log(`retry ${event.attempt} of ${event.what} in ${event.waitMs} ms: ${event.reason}\n`);
        return;
      }
      let row = rows.get(event.digest);
      if (row === undefined) {
        const fresh = { state: 'waiting', done: 0, started: Date.now() } as { bar: ReturnType<MultiBar['create']>; state: string; done: number; started: number };
        fresh.bar = multi.create(event.size, 0, { line: () => transferLine(short(event.digest), fresh.state, fresh.done, event.size, fresh.started) });
        rows.set(event.digest, fresh);
        row = fresh;
      }
      if (event.kind === 'bytes') {
        row.state = 'active';
        row.done = event.done;
      } else if (event.state === 'start') {
        row.state = 'active';
        row.started = Date.now();
      } else {
        row.state = event.state;
        row.done = event.size;
      }
      row.bar.update(row.done);
    },
    stop() {
      multi.stop();
    },
  };
}
