import { readFile } from 'node:fs/promises';
import os from 'node:os';

const TICKS_PER_SECOND = 100; // USER_HZ; 100 on every mainstream Linux build.

/**
 * CPU time (user + system, in seconds) a process has used so far, from /proc/<pid>/stat,
 * or undefined where that is not available (not Linux, process gone). CPU time per request
 * is much less sensitive to a noisy machine than requests/second.
 */
export async function processCpuSeconds(pid) {
  if (os.platform() !== 'linux' || pid === undefined) return undefined;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at state (field 3).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / TICKS_PER_SECOND : undefined;
  } catch {
    return undefined;
  }
}
