// Tells a cron tick from any other launch of the PM2 app `backup`. PM2 launches an app that has
// cron_restart at each scheduled time, but also at `pm2 start`, at every reload or restart of the
// ecosystem (each `npm start`), at `pm2 resurrect`: only a launch at a scheduled time is a tick.
// PM2 schedules with croner; this reads the pattern with the same package and version (a direct
// dependency pinned to PM2's), so both agree on what the schedule means.
import Cron from 'croner';

/** A tick's launch may come this long after its scheduled time (PM2 first stops a run still going). */
const MAX_TICK_DELAY_MS = 60_000;
/** croner's timer may fire a little before the scheduled second. */
const EARLY_FIRE_MS = 1000;

/**
 * The scheduled time (the slot) a launch at `launchedAt` (ms) is the tick of, or null when it is
 * no tick: a scheduled time lies at most MAX_TICK_DELAY_MS before it, or half the interval to the
 * next scheduled time when ticks come more often than that (a schedule every 15 s allows 7.5 s).
 * Uses the local time zone, as PM2's daemon does. Hosts sharing a database name the same slot
 * for the same tick (their lease row, src/backup/lease.ts) as long as they share a time zone.
 */
export function scheduledSlot(pattern: string, launchedAt: number): Date | null {
  const schedule = Cron(pattern);
  // The latest scheduled time at or shortly after the launch, within the widest window.
  let latest: Date | null = null;
  for (let next = schedule.next(new Date(launchedAt - MAX_TICK_DELAY_MS - 1)); next; next = schedule.next(next)) {
    if (next.getTime() > launchedAt + EARLY_FIRE_MS) break;
    latest = next;
  }
  if (latest === null) return null;
  const following = schedule.next(latest);
  const window = following === null ? MAX_TICK_DELAY_MS : Math.min(MAX_TICK_DELAY_MS, (following.getTime() - latest.getTime()) / 2);
  return launchedAt - latest.getTime() <= window ? latest : null;
}

/** Whether a launch at `launchedAt` (ms) is a tick of `pattern` (see scheduledSlot). */
export function isScheduledLaunch(pattern: string, launchedAt: number): boolean {
  return scheduledSlot(pattern, launchedAt) !== null;
}

/** The next scheduled time after `from`, for the log line of a launch that is not a tick. */
export function nextScheduledTime(pattern: string, from: Date): Date | null {
  return Cron(pattern).next(from);
}
