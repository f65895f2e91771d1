// The part of croner 4 this service uses. The package has types, but its `exports` map gives them
// no condition that CommonJS resolution under "module": "nodenext" finds.
declare module 'croner' {
  interface CronJob {
    /** The first scheduled time after `previous` (default: now), milliseconds stripped; null when none. */
    next(previous?: Date | string): Date | null;
  }
  function Cron(pattern: string | Date, options?: { timezone?: string }): CronJob;
  export = Cron;
}
