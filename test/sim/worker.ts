/** A worker thread of `cli.ts --jobs N`: runs the seeds it is sent, one at a time, and posts each result. */
import { parentPort, workerData } from 'node:worker_threads';
import { runSchedule, type SimOptions } from './world.js';

const common = workerData as Omit<SimOptions, 'seed'>;
parentPort!.on('message', (seed: number | null) => {
  if (seed === null) {
    parentPort!.close();
    return;
  }
  void runSchedule({ ...common, seed }).then((r) => parentPort!.postMessage({ ...r, trace: undefined }));
});
