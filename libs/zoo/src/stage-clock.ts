/**
 * Wall time of a zoo stage across sittings, kept in its work dir: a stage may be interrupted and
 * resumed, and its limit is on the total.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The limit on one stage's wall time, over all the sittings it takes. */
export const ZOO_STAGE_LIMIT_SECONDS = 60 * 60;

export interface StageClock {
  /** Seconds recorded by earlier sittings of this stage (same recipe). */
  readonly earlierSeconds: number;
  /** This sitting so far. */
  sittingSeconds(): number;
  /** Earlier sittings plus this one so far. */
  totalSeconds(): number;
  /** Records this sitting's time and stops the periodic save. */
  stop(): Promise<void>;
}

const CLOCK_FILE = 'wall-clock.json';
const CLOCK_SAVE_MS = 15_000;

/**
 * Wall time of a stage across sittings: each sitting appends its own entry to `wall-clock.json` in
 * the stage's work dir and rewrites it every 15 s, so a sitting that ends abruptly (killed, machine
 * gone) loses at most that much; one that ends by Ctrl-C or an error records its time on the way out.
 */
export async function startStageClock(
  workDir: string,
  now: () => number = () => performance.now(),
): Promise<StageClock> {
  await mkdir(workDir, { recursive: true });
  const path = join(workDir, CLOCK_FILE);
  let sittings: { startedAt: string; seconds: number }[] = [];
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as { sittings?: unknown };
    const valid =
      Array.isArray(parsed.sittings) &&
      parsed.sittings.every(
        (s: unknown) =>
          typeof s === 'object' &&
          s !== null &&
          typeof (s as { startedAt?: unknown }).startedAt === 'string' &&
          Number.isFinite((s as { seconds?: unknown }).seconds) &&
          (s as { seconds: number }).seconds >= 0,
      );
    // A sitting dropped here would shorten the stage's recorded time: refuse rather than undercount.
    if (!valid) throw new Error('expected {"sittings":[{"startedAt":string,"seconds":number ≥ 0},…]}');
    sittings = parsed.sittings as { startedAt: string; seconds: number }[];
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`${path}: unreadable stage clock (${(error as Error).message}); fix or delete it`);
    }
  }
  const earlierSeconds = sittings.reduce((sum, s) => sum + s.seconds, 0);
  const t0 = now();
  const current = { startedAt: new Date().toISOString(), seconds: 0 };
  const save = async (): Promise<void> => {
    current.seconds = Math.round((now() - t0) / 100) / 10;
    const tmp = `${path}.tmp`;
    await writeFile(tmp, `${JSON.stringify({ sittings: [...sittings, current] }, null, 2)}\n`);
    await rename(tmp, path);
  };
  await save();
  let saving: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    saving = saving.then(save).catch(() => undefined);
  }, CLOCK_SAVE_MS);
  timer.unref();
  const sittingSeconds = (): number => (now() - t0) / 1000;
  return {
    earlierSeconds,
    sittingSeconds,
    totalSeconds: () => earlierSeconds + sittingSeconds(),
    stop: async () => {
      clearInterval(timer);
      await saving;
      await save();
    },
  };
}
