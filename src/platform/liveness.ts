// The worker's half of the supervisor's liveness check: the supervisor pings each api worker
// over PM2's IPC every second, and the worker answers from its event loop. A worker whose loop
// is stuck (an endless loop, a catastrophic regular expression) cannot answer, and the
// supervisor kills it for PM2 to restart (supervisor/liveness.ts). Asking through the shared
// port would not do: PM2's balancer would pick any worker, rarely the stuck one.

/** The topic of the supervisor's ping (PM2's `sendDataToProcessId` needs one). */
export const LIVENESS_PING_TOPIC = 'resilient-api:ping';
/** The type of the worker's answer, which PM2 puts on its bus as an event of that name. */
export const LIVENESS_PONG_TYPE = 'resilient-api:pong';

export interface LivenessPong {
  readonly type: typeof LIVENESS_PONG_TYPE;
  readonly data: { readonly pid: number; readonly sentAt: number };
}

/** Answers every liveness ping while the process runs under PM2 (a no-op outside it). */
export function answerLivenessPings(): void {
  if (!process.send) return;
  process.on('message', (message: unknown) => {
    if (!isPing(message) || !process.send || !process.connected) return;
    const pong: LivenessPong = { type: LIVENESS_PONG_TYPE, data: { pid: process.pid, sentAt: message.data.sentAt } };
    // A pong lost to a closing channel is no matter: the process is exiting anyway.
    process.send(pong, undefined, {}, () => undefined);
  });
}

function isPing(message: unknown): message is { topic: string; data: { sentAt: number } } {
  if (typeof message !== 'object' || message === null) return false;
  const { topic, data } = message as { topic?: unknown; data?: { sentAt?: unknown } };
  return topic === LIVENESS_PING_TOPIC && typeof data?.sentAt === 'number';
}
