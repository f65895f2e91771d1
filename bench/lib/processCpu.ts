// CPU time of named groups of processes over a stretch of time, from /proc/<pid>/stat (Linux):
// user + system time of each process, all its threads included. Unlike throughput, CPU per
// request hardly moves with the other load on a shared machine.
import { readFileSync } from 'node:fs';

/** USER_HZ: the unit of /proc's times, 100 on every Linux architecture Node runs on. */
const TICKS_PER_SECOND = 100;

/** Named groups of processes: a component of the system and its pids. */
export type ProcessGroups = Readonly<Record<string, readonly number[]>>;

/** Each process's CPU time so far, ms, by pid; a process already gone is left out. */
export type CpuReading = ReadonlyMap<number, number>;

/** utime + stime of one process, ms; undefined when it is gone. */
function cpuMsOf(pid: number): number | undefined {
  try {
    // The command name (field 2) may hold spaces: the fields after it start past its ")".
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').at(-1)?.split(' ') ?? [];
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

export function readCpu(groups: ProcessGroups): CpuReading {
  const reading = new Map<number, number>();
  for (const pid of Object.values(groups).flat()) {
    const ms = cpuMsOf(pid);
    if (ms !== undefined) reading.set(pid, ms);
  }
  return reading;
}

/** CPU ms each group used between two readings (processes present in both). */
export function cpuBetween(groups: ProcessGroups, before: CpuReading, after: CpuReading): Record<string, number> {
  const used: Record<string, number> = {};
  for (const [name, pids] of Object.entries(groups)) {
    used[name] = pids.reduce((sum, pid) => {
      const start = before.get(pid);
      const end = after.get(pid);
      return start === undefined || end === undefined ? sum : sum + Math.max(0, end - start);
    }, 0);
  }
  return used;
}
