/**
 * Allocation sampling in a bench app (`--profile`): V8's sampling heap profiler, told to keep the
 * samples of objects the GC has since collected, so the profile shows where the write path
 * allocates (the garbage that costs GC time), not only what is still alive when it is written.
 * Node's own `--heap-prof` keeps only live objects.
 */
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

let session: Session | undefined;

const post = (method: string, params: object = {}) =>
  new Promise<unknown>((resolve, reject) => session!.post(method, params, (err, result) => (err !== null ? reject(err) : resolve(result))));

/** Starts sampling (about one sample per 16 KiB allocated). */
export async function startHeapSampling(): Promise<void> {
  session = new Session();
  session.connect();
  await post('HeapProfiler.enable');
  await post('HeapProfiler.startSampling', { samplingInterval: 16_384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
}

/** Stops sampling and writes `<dir>/HEAP.<pid>.heapprofile`. */
export async function writeHeapSampling(dir: string): Promise<void> {
  if (session === undefined) return;
  const { profile } = (await post('HeapProfiler.stopSampling')) as { profile: unknown };
  writeFileSync(join(dir, `HEAP.${process.pid}.heapprofile`), JSON.stringify(profile));
  session.disconnect();
  session = undefined;
}
